"""Tests of vdpm_harness.leaderboard and the built-in markdown and xlsx reporters."""

import pluggy
import pytest
from openpyxl import load_workbook

from vdpm_harness import hookspecs
from vdpm_harness.leaderboard import Leaderboard, collect, format_metric
from vdpm_harness.records import BenchmarkResult, MetricValue
from vdpm_harness.store import write_atomic
from vdpm_harness_plugins.reporters import markdown, xlsx
from vdpm_harness_plugins.reporters.markdown import MarkdownReporter
from vdpm_harness_plugins.reporters.xlsx import XlsxReporter, sheet_name


def metric(value, half, n, n_clusters=None):
    return MetricValue(
        value=value, n=n, se=half / 1.96, ci_low=value - half, ci_high=value + half, n_clusters=n_clusters
    )


def result(model, benchmark, value, categories, **extra):
    fields = {
        "model": model,
        "benchmark": benchmark,
        "benchmark_version": "2",
        "primary": "accuracy",
        "metrics": {"accuracy": metric(value, 2.5, 100, 40)},
        "categories": {c: {"accuracy": m} for c, m in categories.items()},
        "category_order": ["speed", "distance", "direction"],
        "n_samples": 100,
        "n_errors": 3,
        "unparsed_rate": 0.05,
        "scoring": "rules:mcq",
    }
    return BenchmarkResult(**{**fields, **extra})


# Model "alpha" has both benchmarks, "beta" only "dsr"; beta's dsr run also reports a category alpha's lacks.
RESULTS = [
    result("alpha", "dsr", 60.0, {"distance": metric(55.0, 4.0, 50), "speed": metric(65.0, 4.5, 50)}),
    result("alpha", "vlm4d", 40.0, {"ego": metric(41.0, 3.0, 60)}, scoring="judge:gpt@1", unparsed_rate=0.0),
    result(
        "beta",
        "dsr",
        70.0,
        {"distance": metric(72.0, 3.0, 50), "speed": metric(68.0, 3.5, 40), "other": metric(70.0, 5.0, 10)},
        n_errors=0,
    ),
]


@pytest.fixture
def results_dir(tmp_path):
    root = tmp_path / "results"
    for r in RESULTS:
        folder = root / r.model / r.benchmark
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(r.to_json())
    broken = root / "gamma" / "dsr"
    broken.mkdir(parents=True)
    (broken / "results.json").write_text('{"model": "gamma", "benchmark": ')
    return root


@pytest.fixture
def board(results_dir):
    with pytest.warns(UserWarning, match=r"gamma[/\\]dsr[/\\]results\.json"):
        return collect(results_dir)


def test_collect_skips_malformed_files_and_sorts(board):
    assert [(r.model, r.benchmark) for r in board.results] == [("alpha", "dsr"), ("alpha", "vlm4d"), ("beta", "dsr")]
    assert board.models() == ["alpha", "beta"]
    assert board.models("vlm4d") == ["alpha"]
    assert board.benchmarks() == ["dsr", "vlm4d"]
    assert board.get("beta", "dsr") == RESULTS[2]
    assert board.get("beta", "vlm4d") is None
    assert board.categories("dsr") == ["speed", "distance", "other"]


def test_collect_skips_duplicates_with_a_warning(results_dir):
    copy = results_dir / "alpha-copy" / "dsr"
    copy.mkdir(parents=True)
    (copy / "results.json").write_text(RESULTS[0].to_json())
    with pytest.warns(UserWarning) as caught:
        board = collect(results_dir)
    assert any("alpha-copy" in str(w.message) for w in caught)
    assert len(board.results) == 3


def test_leaderboard_rejects_duplicate_pairs():
    with pytest.raises(ValueError):
        Leaderboard([RESULTS[0], RESULTS[0]])


def test_overall_rows_average_the_benchmarks_a_model_has(board):
    alpha, beta = board.overall_rows()
    assert alpha.mean == pytest.approx(50.0) and alpha.n_benchmarks == 2
    assert beta.mean == pytest.approx(70.0) and beta.n_benchmarks == 1
    assert beta.metrics == {"dsr": RESULTS[2].metrics["accuracy"], "vlm4d": None}


def test_format_metric():
    assert format_metric(metric(63.44, 2.06, 120)) == "63.4 ± 2.1"
    assert format_metric(metric(63.44, 2.06, 120), with_n=True) == "63.4 ± 2.1 (n=120)"
    assert format_metric(MetricValue(value=50.0, n=3)) == "50.0"
    # A CI clipped at 100 shows the unclipped half-width.
    assert format_metric(MetricValue(value=99.0, n=50, ci_low=97.0, ci_high=100.0)) == "99.0 ± 2.0"


def table_rows(text, heading):
    """The cells of the markdown table under ``## heading``: a list of rows, each a list of cell strings."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not line.startswith("|---")]


def test_markdown_reporter(board, tmp_path):
    out = tmp_path / "out"
    paths = MarkdownReporter().write(board, out)
    assert paths == [out / "leaderboard.md"]
    text = paths[0].read_text(encoding="utf-8")
    assert "source of truth" in text and "`vdpm-harness leaderboard --results RESULTS_DIR`" in text
    assert not list(out.glob(".*.tmp"))

    overall = table_rows(text, "Overall")
    assert overall == [
        [
            "Model",
            "dsr accuracy",
            "dsr unparsed",
            "vlm4d accuracy",
            "vlm4d unparsed",
            "Mean accuracy",
            "Benchmarks averaged",
        ],
        ["alpha", "60.0 ± 2.5 (n=100)", "5.0%", "40.0 ± 2.5 (n=100)", "0.0%", "50.0", "2"],
        ["beta", "70.0 ± 2.5 (n=100)", "5.0%", "–", "–", "70.0", "1"],
    ]

    dsr = table_rows(text, "dsr")
    assert dsr[0] == [
        "Model", "Version", "Scoring", "accuracy", "Clusters", "Unparsed", "Errors", "speed", "distance", "other",
    ]  # fmt: skip
    assert dsr[1] == [
        "alpha", "2", "rules:mcq", "60.0 ± 2.5 (n=100)", "40", "5.0%", "3", "65.0 ± 4.5 (n=50)", "55.0 ± 4.0 (n=50)",
        "–",
    ]  # fmt: skip
    assert dsr[2][7:] == ["68.0 ± 3.5 (n=40)", "72.0 ± 3.0 (n=50)", "70.0 ± 5.0 (n=10)"]

    vlm4d = table_rows(text, "vlm4d")
    assert [row[0] for row in vlm4d] == ["Model", "alpha"]  # beta has no vlm4d result
    assert vlm4d[1][2] == "judge:gpt@1" and vlm4d[1][-1] == "41.0 ± 3.0 (n=60)"


def test_xlsx_reporter(board, tmp_path):
    out = tmp_path / "out"
    paths = XlsxReporter().write(board, out)
    assert paths == [out / "leaderboard.xlsx"]
    assert not list(out.glob(".*.tmp"))
    workbook = load_workbook(paths[0])
    assert workbook.sheetnames == ["Overall", "dsr", "vlm4d"]

    overall = workbook["Overall"]
    assert overall.freeze_panes == "B2"
    assert all(cell.font.bold for cell in overall[1])
    rows = [list(row) for row in overall.iter_rows(values_only=True)]
    assert rows[0] == [
        "Model",
        *["dsr accuracy", "dsr accuracy CI low", "dsr accuracy CI high", "dsr accuracy n", "dsr unparsed"],
        *["vlm4d accuracy", "vlm4d accuracy CI low", "vlm4d accuracy CI high", "vlm4d accuracy n", "vlm4d unparsed"],
        "Mean accuracy",
        "Benchmarks averaged",
    ]
    assert rows[1] == ["alpha", 60.0, 57.5, 62.5, 100, 0.05, 40.0, 37.5, 42.5, 100, 0.0, 50.0, 2]
    assert rows[2] == ["beta", 70.0, 67.5, 72.5, 100, 0.05, None, None, None, None, None, 70.0, 1]
    assert overall["F2"].number_format == "0.0%"

    dsr = workbook["dsr"]
    assert dsr.freeze_panes == "B2"
    header = [cell.value for cell in dsr[1]]
    assert header == [
        "Model", "Version", "Scoring", "accuracy", "accuracy CI low", "accuracy CI high", "accuracy n", "Clusters",
        "Unparsed", "Errors",
        "speed", "speed CI low", "speed CI high", "speed n",
        "distance", "distance CI low", "distance CI high", "distance n",
        "other", "other CI low", "other CI high", "other n",
    ]  # fmt: skip
    by_header = {model_row[0]: dict(zip(header, model_row)) for model_row in dsr.iter_rows(min_row=2, values_only=True)}
    for r in (RESULTS[0], RESULTS[2]):
        row = by_header[r.model]
        assert (row["Version"], row["Scoring"]) == (r.benchmark_version, r.scoring)
        m = r.metrics["accuracy"]
        assert [row["accuracy"], row["accuracy CI low"], row["accuracy CI high"], row["accuracy n"]] == [
            m.value, m.ci_low, m.ci_high, m.n,
        ]  # fmt: skip
        assert (row["Clusters"], row["Unparsed"], row["Errors"]) == (m.n_clusters, r.unparsed_rate, r.n_errors)
        for category, metrics in r.categories.items():
            c = metrics["accuracy"]
            values = [row[category], row[f"{category} CI low"], row[f"{category} CI high"], row[f"{category} n"]]
            assert values == [c.value, c.ci_low, c.ci_high, c.n]
            assert all(isinstance(v, (int, float)) for v in values)
    assert [by_header["alpha"][f"other{s}"] for s in ("", " CI low", " CI high", " n")] == [None] * 4
    assert [row[0] for row in workbook["vlm4d"].iter_rows(values_only=True)] == ["Model", "alpha"]


def test_reporters_handle_an_empty_leaderboard(tmp_path):
    MarkdownReporter().write(Leaderboard(), tmp_path)
    XlsxReporter().write(Leaderboard(), tmp_path)
    assert "No results." in (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    assert load_workbook(tmp_path / "leaderboard.xlsx").sheetnames == ["Overall"]


def test_sheet_names_are_valid_and_unique():
    taken = {"overall"}
    assert sheet_name("Overall", taken) == "Overall~2"
    long = "a-very-long-benchmark-name/with:forbidden*chars?"
    first = sheet_name(long, taken)
    second = sheet_name(long, taken)
    assert first == "a-very-long-benchmark-name_with"
    assert second == "a-very-long-benchmark-name_wi~2"
    assert len(first) <= 31 and len(second) <= 31
    assert sheet_name("'quoted'", taken) == "quoted"
    assert sheet_name("[]", taken) == "__"


def test_reporters_register_through_the_hook():
    manager = pluggy.PluginManager("vdpm_harness")
    manager.add_hookspecs(hookspecs)
    manager.register(markdown)
    manager.register(xlsx)
    registered = {}

    def register(plugin_id, factory, *, aliases=(), description="", **capabilities):
        registered[plugin_id] = (factory, description)

    manager.hook.register_reporters(register=register)
    assert registered["markdown"][0] == "vdpm_harness_plugins.reporters.markdown:MarkdownReporter"
    assert registered["xlsx"][0] == "vdpm_harness_plugins.reporters.xlsx:XlsxReporter"
    assert all(description for _, description in registered.values())


def test_write_atomic_leaves_the_target_untouched_on_failure(tmp_path):
    target = tmp_path / "leaderboard.md"
    target.write_text("old")

    def failing_write(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, failing_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["leaderboard.md"]


# --- issue 17: failed pairs, every metric of the results, a mean of comparable metrics, interval notes ----------------


def proportion(value, n=100):
    return MetricValue(value=value, n=n, se=1.0, ci_low=value - 2, ci_high=value + 2, n_clusters=n // 2,
                       interval="wilson", kind="proportion")  # fmt: skip


def mean_metric(value, n=100, interval="wald"):
    return MetricValue(value=value, n=n, se=1.0, ci_low=value - 2, ci_high=value + 2, n_clusters=n // 2,
                       interval=interval, kind="mean")  # fmt: skip


def test_failed_pairs_are_marked_never_a_plain_zero(tmp_path):
    """Issue 17 repro: VLM4D without its videos (1,816 of 1,816 errors) and ``random`` on 4dbench-caption put a 0.0
    row on the leaderboard. A pair without a successful sample, or with more errors than ``max_error_rate``, shows
    ``failed`` instead of its numbers and stays out of the mean."""
    results = [
        result("ok", "dsr", 60.0, {}, metrics={"accuracy": proportion(60.0)}, n_errors=0),
        result("ok", "vlm4d", 40.0, {}, metrics={"accuracy": proportion(40.0)}, n_errors=10),
        result(
            "empty", "dsr", 0.0, {"speed": metric(0.0, 0.0, 50)}, metrics={"accuracy": proportion(0.0)}, n_errors=100
        ),  # fmt: skip
        result("empty", "vlm4d", 30.0, {}, metrics={"accuracy": proportion(30.0)}, n_errors=60),
    ]
    board = Leaderboard(results)
    assert board.failure(results[2]) == "failed: 100/100 errors"
    assert board.failure(results[3]) == "failed: 60/100 errors (over 50%)" and board.failure(results[1]) is None
    ok, empty = board.overall_rows()
    assert (ok.mean, ok.n_benchmarks) == (50.0, 2)
    assert (empty.mean, empty.n_benchmarks, set(empty.failed)) == (None, 0, {"dsr", "vlm4d"})
    assert Leaderboard(results, max_error_rate=0.7).overall_rows()[1].averaged == ("vlm4d",)

    text = MarkdownReporter().write(board, tmp_path)[0].read_text(encoding="utf-8")
    overall = {row[0]: row for row in table_rows(text, "Overall")}
    assert overall["empty"][1] == "failed: 100/100 errors" and overall["empty"][3] == "failed: 60/100 errors (over 50%)"
    assert overall["empty"][5:] == ["–", "0"] and overall["ok"][5:] == ["50.0", "2"]
    dsr = {row[0]: row for row in table_rows(text, "dsr")}
    assert dsr["empty"][3] == "failed: 100/100 errors" and dsr["empty"][-1] == "failed: 100/100 errors"  # speed
    assert "| 0.0 ±" not in text and "more than 50% errors" in text

    sheet = load_workbook(XlsxReporter().write(board, tmp_path)[0])["Overall"]
    rows = {row[0]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["empty"][1:5] == ("failed: 100/100 errors", None, None, None)
    assert rows["ok"][1:5] == (60.0, 58.0, 62.0, 100)


def test_every_metric_of_the_results_is_shown_and_the_mean_averages_accuracies_only(tmp_path):
    """Issue 17: the leaderboard showed only the primary metric, and ``Mean`` averaged CIDEr with accuracies. DSR's
    VLMEvalKit and fork decisions, VLM4D's table cells and 4D-Bench's caption metrics are shown (xlsx: value, CI and
    n; markdown: values); the mean averages accuracy-type metrics only, and says so."""
    caption = {name: mean_metric(v) for name, v in [("cider_pycocoevalcap", 42.0), ("bleu1_pycocoevalcap", 30.0),
                                                     ("bleu4_pycocoevalcap", 8.0), ("meteor_java", 15.0),
                                                     ("rouge_l_pycocoevalcap", 25.0)]}  # fmt: skip
    caption["meteor_java"] = MetricValue(value=15.0, n=100)  # a corpus metric: no interval
    vlm4d_cells = {"overall": proportion(40.0), "real_overall": proportion(45.0), "syn_overall": proportion(35.0),
                   "real_ego": proportion(44.0)}  # fmt: skip
    results = [
        result(
            "m",
            "dsr",
            60.0,
            {},
            metrics={
                "accuracy": proportion(60.0),
                "accuracy_vlmevalkit": proportion(58.0),
                "accuracy_fork": proportion(61.0),
            },
        ),  # fmt: skip
        result("m", "vlm4d", 40.0, {"real_ego": proportion(44.0)}, primary="overall", metrics=vlm4d_cells),
        result("m", "4dbench-caption", 42.0, {}, primary="cider_pycocoevalcap", metrics=caption),
    ]
    board = Leaderboard(results)
    [row] = board.overall_rows()
    assert row.averaged == ("dsr", "vlm4d") and row.mean == pytest.approx(50.0)  # CIDEr is not averaged
    assert board.metric_names("dsr") == ["accuracy_vlmevalkit", "accuracy_fork"]
    assert board.metric_names("vlm4d") == ["real_overall", "syn_overall"]  # real_ego is the category's column
    assert board.metric_names("4dbench-caption") == [
        "bleu1_pycocoevalcap", "bleu4_pycocoevalcap", "meteor_java", "rouge_l_pycocoevalcap",
    ]  # fmt: skip

    text = MarkdownReporter().write(board, tmp_path)[0].read_text(encoding="utf-8")
    assert "Mean accuracy is the unweighted mean of the accuracy-type primary metrics" in text
    assert "CIDEr" in text.split("## Overall")[0]
    section = text.split("## dsr\n", 1)[1].split("\n## ", 1)[0]
    others = [line for line in section.splitlines() if line.startswith("| Model | accuracy_vlmevalkit")]
    assert others == ["| Model | accuracy_vlmevalkit | accuracy_fork |"]
    assert "| m | 58.0 | 61.0 |" in section
    assert "| m | 30.0 | 8.0 | 15.0 | 25.0 |" in text.split("## 4dbench-caption\n", 1)[1]

    workbook = load_workbook(XlsxReporter().write(board, tmp_path)[0])
    header = [c.value for c in workbook["dsr"][1]]
    row = dict(zip(header, next(workbook["dsr"].iter_rows(min_row=2, values_only=True))))
    assert header.index("accuracy_vlmevalkit") == header.index("Errors") + 1
    assert [row[f"accuracy_fork{s}"] for s in ("", " CI low", " CI high", " n")] == [61.0, 59.0, 63.0, 100]
    caption_header = [c.value for c in workbook["4dbench-caption"][1]]
    assert {"bleu1_pycocoevalcap", "bleu4_pycocoevalcap", "meteor_java", "rouge_l_pycocoevalcap"} <= set(caption_header)
    overall = workbook["Overall"]
    notes = {c.value: c.comment.text for c in overall[1] if c.comment is not None}
    assert notes["Mean accuracy"].startswith("Mean accuracy is the unweighted mean of the accuracy-type")


def test_reports_say_how_the_intervals_were_computed(tmp_path):
    """Issue 17: the report headers (markdown notes, xlsx header comments) name the interval of each metric: Wilson on
    n/deff for proportions, Wald for other means, and flag results written before the interval was recorded."""
    results = [
        result("m", "dsr", 60.0, {}, metrics={"accuracy": proportion(60.0)}),
        result(
            "m",
            "4dbench-caption",
            42.0,
            {},
            primary="cider_pycocoevalcap",
            metrics={"cider_pycocoevalcap": mean_metric(42.0)},
        ),  # fmt: skip
    ]
    text = MarkdownReporter().write(Leaderboard(results), tmp_path)[0].read_text(encoding="utf-8")
    head = text.split("## Overall")[0]
    assert "Wilson score interval on the effective sample size n/deff" in head and "(Wald)" in head
    assert "before the interval was recorded" not in head
    workbook = load_workbook(XlsxReporter().write(Leaderboard(results), tmp_path)[0])
    notes = {c.value: c.comment.text for c in workbook["dsr"][1] if c.comment is not None}
    assert notes["accuracy CI low"].startswith("95% interval: Wilson score interval") and "Wald" not in notes[
        "accuracy CI low"]  # fmt: skip
    notes = {c.value: c.comment.text for c in workbook["4dbench-caption"][1] if c.comment is not None}
    assert "(Wald)" in notes["cider_pycocoevalcap CI high"]
    old = MarkdownReporter().write(Leaderboard(RESULTS), tmp_path)[0].read_text(encoding="utf-8")
    assert "before the interval was recorded" in old and "`vdpm-harness rescore`" in old
