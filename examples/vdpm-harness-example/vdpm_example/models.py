"""The ``longest-option`` model: a text-only multiple-choice baseline."""

from vdpm_harness import Model, PreparedRequest, Response, Strict, option_text


class LongestOption(Model):
    needs_frames = False  # the harness skips video decoding for this model

    class Options(Strict):
        batch_size: int = 64

    def generate(self, batch: list[PreparedRequest]) -> list[Response]:
        responses = []
        for prepared in batch:
            request = prepared.request
            options = request.options
            if not options:
                responses.append(Response(sample_id=request.sample_id, error="no options to choose from"))
                continue
            longest = max(range(len(options)), key=lambda i: (len(option_text(options[i])), -i))
            responses.append(Response(sample_id=request.sample_id, text=request.choices[longest]))
        return responses
