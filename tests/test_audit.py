"""``vdpm-harness audit``: the blind baselines per category against chance, on a benchmark built to be biased (the
correct option is always the shortest) and one built to be fair (every text as often correct as wrong, every letter
as often correct), plus the statistics it rests on (exact binomial tail, Holm, design effect)."""

from __future__ import annotations

import json
import types

import pytest
from click.testing import CliRunner

from vdpm_harness import MCQBenchmark, Message, Sample, Strict, TextPart, hookimpl
from vdpm_harness.audit import (
    OVERALL,
    audit_config,
    better_than_chance,
    binomial_tail,
    holm,
    run_audit,
    to_markdown,
    write_report,
)
from vdpm_harness.cli import cli
from vdpm_harness.records import MetricValue
from vdpm_harness.stats import clustered_mean

TEXTS = ["a", "bb", "ccc", "dddd"]


class Fixture(MCQBenchmark):
    """80 questions on 40 videos (two each), categories x and y. ``fair``: the correct text cycles through the four
    texts and the options rotate, so each text and each letter is correct a quarter of the time; ``biased``: the
    correct text is always the shortest, ``a``."""

    version = "1"
    categories = ["x", "y"]

    class Options(Strict):
        kind: str = "fair"

    def samples(self):
        for i in range(80):
            shift = (i // 4) % 4
            options = TEXTS[shift:] + TEXTS[:shift]
            correct = TEXTS[i % 4] if self.options.kind == "fair" else "a"
            yield Sample(sample_id=str(i), video_id=f"v{i // 2}", category="x" if i < 40 else "y", question="q?",
                         options=options, answer="ABCD"[options.index(correct)])  # fmt: skip

    def build_request(self, sample):
        text = "q?\n" + "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(sample.options))
        return self.mcq_request(sample, [Message(content=[TextPart(text=text)])])


@hookimpl
def _register_benchmarks(register):
    register("audit-fixture", Fixture, description="test_audit")


@pytest.fixture
def audit_host(host):
    host.register(types.SimpleNamespace(register_benchmarks=_register_benchmarks), name="test-audit")
    yield host
    host.unregister("test-audit")


def test_binomial_tail_and_holm_match_statsmodels():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    for k, n, p in [(7, 20, 0.25), (0, 10, 0.25), (10, 10, 0.25), (46, 80, 0.25), (3, 5, 0.5), (500, 1816, 0.25),
                    (1, 2000, 0.001)]:  # fmt: skip
        assert binomial_tail(k, n, p) == pytest.approx(proportion.binom_test(k, n, p, alternative="larger"), rel=1e-9)
    p_values = [0.01, 0.04, 0.03, 0.5, 0.0001]
    assert holm(p_values) == pytest.approx(list(multitest.multipletests(p_values, method="holm")[1]))


def test_the_design_effect_shrinks_the_evidence_of_clustered_answers():
    """20 of 40 right, the same 20 as two per video on 10 videos (every video all right or all wrong): the effective
    sample is half, so the same accuracy is less significant than with 40 independent answers."""
    independent = clustered_mean([1.0] * 20 + [0.0] * 20, list(range(40)))
    clustered = clustered_mean([1.0] * 20 + [0.0] * 20, [i // 2 for i in range(40)])
    p_independent, deff_independent, _ = better_than_chance(independent, 0.25)
    p_clustered, deff_clustered, n_eff = better_than_chance(clustered, 0.25)
    # CR1's G/(G-1) makes the independent case's design effect 40/39, within the rounding to whole trials
    assert deff_independent == pytest.approx(1.0, abs=0.03) and deff_clustered == pytest.approx(2.0, rel=0.1)
    assert n_eff == pytest.approx(20, abs=1) and p_clustered > 10 * p_independent
    assert p_independent == pytest.approx(binomial_tail(20, 39, 0.25))
    assert better_than_chance(MetricValue(value=50.0, n=8), 0.25)[1] == 1.0  # without a clustered error: deff 1


def report_of(host, tmp_path, kind):
    config = audit_config(host, "audit-fixture", (f"kind={kind}",), out=tmp_path / kind)
    return run_audit(host, config)


def test_a_fair_benchmark_raises_no_flag(audit_host, tmp_path):
    report = report_of(audit_host, tmp_path, "fair")
    assert report.flags == [] and report.categories == ["x", "y", OVERALL]
    assert len(report.cells) == 6 * 3 and report.baselines[:2] == ["blind-shortest-items", "blind-shortest-characters"]
    # the shortest text ('a') and the longest ('dddd') are each correct on exactly a quarter of the questions
    for baseline in ("blind-shortest-characters", "blind-longest-characters"):
        assert [report.cell(baseline, c).accuracy.value for c in ("x", "y", OVERALL)] == [25.0, 25.0, 25.0]
    assert all(cell.chance == 25.0 for cell in report.cells)
    assert all(cell.chance_inside for cell in report.cells if not cell.baseline.startswith("blind-prior"))
    # leaving a video's own questions out of a balanced set makes their answers the rarer ones: the prior is below
    # chance here (0%), never above
    assert report.cell("blind-prior-category", OVERALL).accuracy.value == 0.0
    assert report.distributions["x"].letters == {"A": 10, "B": 10, "C": 10, "D": 10}
    assert report.distributions[OVERALL].answers == [("a", 20), ("bb", 20), ("ccc", 20), ("dddd", 20)]
    assert "No blind baseline beats chance significantly (18 tests" in to_markdown(report)


def test_a_biased_benchmark_is_flagged_where_and_only_where_it_is_biased(audit_host, tmp_path):
    report = report_of(audit_host, tmp_path, "biased")
    flagged = {(c.baseline, c.category) for c in report.flags}
    expected = {(b, c) for b in ("blind-shortest-characters", "blind-prior-category", "blind-prior-template")
                for c in ("x", "y", OVERALL)}  # fmt: skip
    assert flagged == expected
    assert report.cell("blind-shortest-characters", "x").accuracy.value == 100.0
    assert report.cell("blind-longest-characters", "x").accuracy.value == 0.0  # below chance is no advantage
    assert not report.cell("blind-shortest-characters", "x").chance_inside
    assert report.distributions["y"].answers == [("a", 40)] and report.distributions["y"].distinct_answers == 1
    assert "**9 of 18 tests flag a blind advantage**" in to_markdown(report)
    md, js = write_report(report, tmp_path / "report")
    data = json.loads(js.read_text())
    assert data["flags"] == 9 and data["tests"] == 18 and md.read_text().startswith("# Blind audit of audit-fixture")


def test_the_audit_command(audit_host, tmp_path):
    runner = CliRunner()
    out = tmp_path / "res"
    result = runner.invoke(cli, ["audit", "audit-fixture", "--bench-arg", "kind=biased", "--out", str(out),
                                 "--fail-on-flag"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "9 of 18 tests flag a blind advantage" in result.output
    assert (out / "audit" / "audit-audit-fixture.md").is_file()
    assert (out / "blind-prior-category" / "audit-fixture" / "results.json").is_file()
    result = runner.invoke(cli, ["audit", "audit-fixture", "--out", str(tmp_path / "fair"), "--fail-on-flag"])
    assert result.exit_code == 0, result.output
    # a text-only real model joins the audit with blind=true, and a separate training split trains the prior
    result = runner.invoke(cli, ["audit", "audit-fixture", "--bench-arg", "kind=biased", "--out", str(out),
                                 "--model", "random", "--train-bench", "audit-fixture",
                                 "--train-bench-arg", "kind=fair"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((out / "random-blind" / "audit-fixture" / "run.json").read_text())
    assert record["model"]["blind"] is True
    prior = json.loads((out / "blind-prior-category" / "audit-fixture" / "run.json").read_text())["model"]
    assert prior["options"]["train_options"] == {"kind": "fair"} and prior["options"]["holdout"] == "none"


def test_the_leaderboard_shows_the_blind_ceiling(audit_host, tmp_path):
    """After an audit and a run of a seeing model in the same results folder, the leaderboard has the benchmark's
    blind ceiling (the best blind run) and each seeing model's margin over it; blind rows are marked."""
    from vdpm_harness.config import build_config
    from vdpm_harness.leaderboard import ABOVE_BLIND_HEADER, collect
    from vdpm_harness.pipeline import Runner
    from vdpm_harness_plugins.reporters.markdown import render

    out = tmp_path / "res"
    run_audit(audit_host, audit_config(audit_host, "audit-fixture", ("kind=biased",), out=out))
    config = build_config(models="random", benches="audit-fixture", bench_args=("kind=biased",), out=str(out))
    [seeing] = Runner(config, audit_host).run()
    board = collect(out)
    model, ceiling = board.blind_ceiling("audit-fixture")
    assert ceiling.value == 100.0 and model in ("blind-shortest-characters", "blind-prior-category",
                                                "blind-prior-template")  # fmt: skip
    overall = {c.header: c for c in board.overall_columns()}
    margin = overall[f"audit-fixture {ABOVE_BLIND_HEADER}"].cell("random")
    assert margin == pytest.approx(seeing.result.metrics["accuracy"].value - 100.0)
    assert overall[f"audit-fixture {ABOVE_BLIND_HEADER}"].cell("blind-longest-items") is None
    columns = {c.header: c for c in board.benchmark_columns("audit-fixture")}
    assert columns["Blind"].cell("blind-prior-category") == "blind" and columns["Blind"].cell("random") is None
    text = render(board)
    assert "Blind ceiling: 100.0" in text and "The blind ceiling of a benchmark" in text
    assert (out / "leaderboard.xlsx").is_file()
