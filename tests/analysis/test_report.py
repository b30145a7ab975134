"""`seqmask report` end to end, through Typer's CliRunner: the page it writes (seven
sections, self-contained), the numbers behind its figures against `seqmask evaluate`, its
options, and one clear message (and no page) for every bad input. Four tiny runs cover
every decoder, loss, target, input kind and bundled data file; each is trained once for
the module and tests that change a run use a copy."""

import base64
import csv
import html
import re
import shutil
import webbrowser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import ROOT, one_error
from typer.testing import CliRunner, Result

from seqmask.cli import app

runner = CliRunner()

SECTIONS = ("run", "curves", "lengths", "reconstructions", "features", "latent", "anomalies")
TINY = ["model.units=4", "model.latent_dim=4", "train.batch_size=64"]

# name -> (config, --set overrides). Together: every decoder (repeat, remask with pre
# padding, crop), loss (per_step, last_step), target (reconstruct, next_step, reverse,
# composite), input kind (values, tokens) and bundled data file (.npz, .csv, .txt).
RUNS = {
    # Pre padding, the slowest to train, with no validation data: train does not calibrate
    # and the report covers the training data.
    "remask-pre-reverse-last-step": (
        "remask.yaml",
        ["train.epochs=1", "train.target=reverse", "train.loss=last_step", "data.validation_split=0"],
    ),
    "crop-composite": ("crop.yaml", ["train.epochs=1", "train.target=composite"]),
    "next-step-csv": ("next_step.yaml", ["train.epochs=2"]),  # two checkpoints: best, last
    "tokens": ("tokens.yaml", ["train.epochs=1", "input.embedding_dim=4"]),
}
NO_VALIDATION = "remask-pre-reverse-last-step"
COVERED = {  # what each run exercises, checked against its config.yaml below
    "remask-pre-reverse-last-step": ("remask", "last_step", "reverse", "values", "trajectories.npz"),
    "crop-composite": ("crop", "per_step", "composite", "values", "trajectories.npz"),
    "next-step-csv": ("repeat", "per_step", "next_step", "values", "trajectories.csv"),
    "tokens": ("repeat", "per_step", "reconstruct", "tokens", "tokens.txt"),
}


def invoke(*args: object) -> Result:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def squeezed(text: str) -> str:
    """`text` without whitespace: Rich wraps long paths at the runner's 80 columns."""
    return "".join(text.split())


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def sections(page: str) -> dict[str, str]:
    """section id -> its body, HTML entities decoded (captions escape their quotes)."""
    found = re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S)
    assert [sid for sid, _ in found] == list(SECTIONS), [sid for sid, _ in found]
    return {sid: html.unescape(body) for sid, body in found}


def without_images(text: str) -> str:
    return re.sub(r"base64,[A-Za-z0-9+/=]*", "base64,", text)


def evaluate_csv(run_dir: Path, tmp_path: Path, *args: object) -> tuple[str, list[dict[str, str]]]:
    """What `seqmask evaluate` prints, and its per-sequence rows."""
    out = tmp_path / "errors.csv"
    printed = ok(invoke("evaluate", run_dir, "--output", out, *args))
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert (reader.fieldnames or [])[:4] == ["id", "length", "scored_steps", "error"]  # tokens: + accuracy
        return printed, list(reader)


class Runs:
    """The tiny runs, each trained on first use and kept for the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.trained: dict[str, Path] = {}
        self.gathered: dict[str, Any] = {}
        self.outputs: dict[str, str] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.trained:
            config, sets = RUNS[name]
            run_dir = self.root / name
            args = [a for s in TINY + sets for a in ("--set", s)]
            ok(invoke("train", run_dir, "--config", ROOT / "configs" / config, "--quiet", *args))
            self.trained[name] = run_dir
        return self.trained[name]

    def report(self, name: str) -> tuple[str, str]:
        """The run's default report (RUN_DIR/report.html), written once: (page, what report printed)."""
        if name not in self.outputs:
            self.outputs[name] = ok(invoke("report", self[name]))
        return (self[name] / "report.html").read_text(encoding="utf-8"), self.outputs[name]

    def gather(self, name: str) -> Any:  # seqmask.analysis.report.ReportData
        """What the report of the run draws (seqmask.analysis.report.gather), computed once."""
        from seqmask.analysis.report import gather
        from seqmask.run.loaded import load_run

        if name not in self.gathered:
            self.gathered[name] = gather(load_run(self[name]))
        return self.gathered[name]

    def copy(self, name: str, to: Path) -> Path:
        """A copy of a trained run, without the report the module's tests wrote into it."""
        run_dir = Path(shutil.copytree(self[name], to / name))
        (run_dir / "report.html").unlink(missing_ok=True)
        return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("runs"))


class Built:
    def __init__(self, name: str, runs: Runs) -> None:
        self.name, self.run_dir = name, runs[name]
        self.path = self.run_dir / "report.html"
        self.page, self.output = runs.report(name)
        self.sections = sections(self.page)


@pytest.fixture(scope="module", params=list(RUNS))
def built(request: pytest.FixtureRequest, runs: Runs) -> Built:
    """Each run's default report (RUN_DIR/report.html), written once."""
    return Built(request.param, runs)


# --------------------------------------------------------------------------- the page


@pytest.mark.slow
def test_the_runs_cover_every_decoder_loss_target_input_and_data_file(built: Built) -> None:
    import yaml

    cfg = yaml.safe_load((built.run_dir / "config.yaml").read_text())
    decoder, loss, target, kind, data = COVERED[built.name]
    assert cfg["model"]["decoder"] == decoder
    assert cfg["train"]["loss"] == loss and cfg["train"]["target"] == target
    assert cfg["input"]["kind"] == kind and Path(cfg["data"]["train"]).name == data
    if decoder == "remask":
        assert cfg["data"]["padding"] == "pre"
    assert {v[0] for v in COVERED.values()} == {"repeat", "remask", "crop"}
    assert {v[1] for v in COVERED.values()} == {"per_step", "last_step"}
    assert {v[2] for v in COVERED.values()} == {"reconstruct", "next_step", "reverse", "composite"}
    assert {v[3] for v in COVERED.values()} == {"values", "tokens"}
    assert {v[4] for v in COVERED.values()} == {"trajectories.npz", "trajectories.csv", "tokens.txt"}


@pytest.mark.slow
def test_report_is_one_self_contained_page_with_seven_sections(built: Built) -> None:
    assert squeezed(f"wrote the report to {built.path}") in squeezed(built.output)
    page = built.page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for sid in SECTIONS:
        assert page.count(f'id="{sid}"') == 1, sid
        assert f'href="#{sid}"' in page, sid  # the navigation links every section
    # Nothing is fetched: no URL anywhere, every image is an embedded PNG.
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)
    assert len(sources) == page.count("<img") >= 5
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(b"\x89PNG\r\n\x1a\n")
    assert not re.search(r"<(script|link|iframe)\b", page)
    for ref in re.findall(r"\b(?:src|href)=\"([^\"]*)\"", page):
        assert ref.startswith(("data:", "#")), ref
    assert built.path.stat().st_size < 5_000_000
    assert not list(built.run_dir.glob(".tmp-*")), "temporary files left behind"


@pytest.mark.slow
def test_report_numbers_match_metrics_and_evaluate(built: Built, tmp_path: Path) -> None:
    import json

    metrics = json.loads((built.run_dir / "metrics.json").read_text())
    run = without_images(built.sections["run"])
    best = metrics["best_epoch"]
    assert f"<th>best epoch</th><td>{best} (" in run
    assert f"loss {metrics['best_loss']:.6f}" in run
    curves = built.sections["curves"]
    assert f"The star is the best epoch ({best})" in curves

    no_validation = built.name == NO_VALIDATION
    # evaluate on the data the report covers: the validation split, or the training file.
    extra = ["--data", ROOT / "data/trajectories.npz"] if no_validation else []
    printed, rows = evaluate_csv(built.run_dir, tmp_path, *extra)
    loss = re.search(r"loss \([a-z_]+, [a-z-]+\) │ ([0-9.]+) │", printed)
    assert loss, printed
    assert f"{loss.group(1)} (the number 'seqmask evaluate' prints)" in run
    if not no_validation:
        assert f"{metrics['best_val_loss']:.6f}" == loss.group(1)
        assert f"val_loss {metrics['best_val_loss']:.6f}" in run
    assert f"{len(rows):,} sequences" in run

    errors = np.array([float(r["error"]) for r in rows])
    worst, best_seq = rows[int(np.argmax(errors))], rows[int(np.argmin(errors))]
    recon = built.sections["reconstructions"]
    if built.name == "tokens":
        found = re.findall(r"<h3>(best|median|worst): '([^']*)', error ([0-9.]+)", recon)
        shown = {name: err for name, _, err in found}
        ids = {name: sid for name, sid, _ in found}
    else:
        pattern = r"The (best|median|worst) sequence by error: '([^']*)' \((\d+) steps, error ([0-9.]+)\)"
        found = re.findall(pattern, recon)
        shown = {name: err for name, _, _, err in found}
        ids = {name: sid for name, sid, _, _ in found}
        lengths = {name: int(n) for name, _, n, _ in found}
        assert lengths["worst"] == int(worst["length"]) and lengths["best"] == int(best_seq["length"])
    assert set(ids) == {"best", "median", "worst"}, recon[:500]
    assert ids["worst"] == worst["id"] and shown["worst"] == f"{float(worst['error']):.6f}"
    assert ids["best"] == best_seq["id"] and shown["best"] == f"{float(best_seq['error']):.6f}"
    median = sorted(errors)[len(errors) // 2]
    assert float(shown["median"]) == pytest.approx(median, abs=1e-6)


@pytest.mark.slow
def test_report_states_the_detector(built: Built) -> None:
    anomalies = without_images(built.sections["anomalies"])
    if built.name == NO_VALIDATION:  # train could not calibrate: no validation data
        assert not (built.run_dir / "detector.json").exists()
        assert "no anomaly detector" in anomalies and "seqmask calibrate" in anomalies
    else:
        assert (built.run_dir / "detector.json").is_file()
        assert re.search(r"\d+ of [\d,]+ lie above the threshold and are flagged", anomalies), anomalies


@pytest.mark.slow
def test_report_without_validation_data_covers_the_training_data(runs: Runs) -> None:
    page = runs.report(NO_VALIDATION)[0]
    run = sections(page)["run"]
    assert "the training data (the run has no validation data): 600 sequences" in run
    assert "<th>best epoch</th><td>1 (val_loss -, loss " in run


@pytest.mark.slow
def test_token_report_shows_tokens_and_marks_mispredictions(runs: Runs) -> None:
    page = runs.report("tokens")[0]
    recon = page.split('<section id="reconstructions">', 1)[1].split("</section>", 1)[0]  # still escaped
    assert "<img" not in recon  # tokens, not plots
    lines = (ROOT / "data/tokens.txt").read_text().splitlines()
    shown = re.split(r"<h3>", recon)[1:]
    assert len(shown) == 3, recon
    for part in shown:
        sid = re.match(r"(best|median|worst): '(\d+)'", part)
        assert sid, part[:200]
        text = html.unescape(" ".join(re.sub(r"<[^>]+>", " ", part.split("</h3>", 1)[1]).split()))
        row = re.match(r"target:? (.*) model:? (.*)", text)
        assert row, text
        want = lines[int(sid.group(2)) - 1].split()  # the id is the line number
        target, model = row.group(1).split(), row.group(2).split()
        assert len(target) == len(model) and 0 < len(target) <= len(want)
        assert all(t in (w, "<unk>") for t, w in zip(target, want, strict=False)), (target, want)
    assert recon.count("<mark>") > 1  # after one epoch, some tokens are mispredicted (beyond the legend)


# --------------------------------------------------------------------------- the numbers behind a figure


@pytest.mark.slow
@pytest.mark.parametrize("name", [NO_VALIDATION, "next-step-csv"])
def test_reconstruction_figures_draw_the_data_in_its_own_units(runs: Runs, name: str) -> None:
    """The solid line of a reconstruction is the sequence (reversed, or shifted, by the
    target) in the data file's units, and the dashed one is drawn at evaluate's scored steps."""
    from seqmask.analysis.report import _chosen, _predictions

    source = np.load(ROOT / "data/trajectories.npz")
    offsets = np.concatenate([[0], np.cumsum(source["lengths"])])
    row = {sid: k for k, sid in enumerate(source["ids"].astype(str))}
    d = runs.gather(name)
    target = d.run.cfg.train.target
    assert len(_chosen(d.errors)) == 3
    for _, i in _chosen(d.errors):
        k = row[str(d.seqs.ids[i])]
        raw = source["values"][offsets[k] : offsets[k + 1]]
        y, p, scored = _predictions(d, i)
        assert y.shape == raw.shape and p.shape == raw.shape
        if target == "reverse":
            want, steps = raw[::-1], len(raw)
        elif target == "next_step":
            want, steps = raw[1:], len(raw) - 1
            y = y[:-1]
        else:
            want, steps = raw, len(raw)
        np.testing.assert_allclose(y, want, atol=2e-3)  # float32, standardized and back
        if d.run.cfg.train.loss == "per_step":  # last_step: the next test
            assert int(scored.sum()) == steps == int(d.outputs.scores.counts[i])


@pytest.mark.slow
def test_last_step_reconstruction_is_drawn_at_the_one_scored_step(runs: Runs) -> None:
    from seqmask.analysis.report import _chosen, _predictions

    d = runs.gather(NO_VALIDATION)
    assert d.run.cfg.train.loss == "last_step"
    for _, i in _chosen(d.errors):
        # evaluate's scored_steps column (test_report_numbers_match_metrics_and_evaluate
        # checks these are evaluate's numbers): one step per sequence
        assert int(d.outputs.scores.counts[i]) == 1
        _, _, scored = _predictions(d, i)
        assert int(scored.sum()) == 1, (int(scored.sum()), int(d.seqs.lengths[i]))


# --------------------------------------------------------------------------- options


@pytest.mark.slow
def test_labels_colour_the_latent_space_and_open_hands_the_page_to_a_browser(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "get", lambda *a, **k: object())  # a browser is registered
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    run_dir = runs.copy("crop-composite", tmp_path)
    # The labels file names all 600 sequences; the report covers the 120 of the validation split.
    text = ok(invoke("report", run_dir, "--labels", ROOT / "data/trajectories_labels.csv", "--open"))
    latent = sections((run_dir / "report.html").read_text())["latent"]
    assert "coloured by their label" in latent and "coloured by their length" not in latent
    assert opened == [(run_dir / "report.html").resolve().as_uri()]
    assert "no web browser" not in text


@pytest.mark.slow
def test_labels_matching_no_sequence_are_an_error(runs: Runs, tmp_path: Path) -> None:
    run_dir = runs.copy("crop-composite", tmp_path)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,family\nnobody,circle\nnoone,line\n")
    one_error(invoke("report", run_dir, "--labels", labels), 1, str(labels), "no id matches")
    assert not (run_dir / "report.html").exists()
    bad = tmp_path / "bad.csv"
    bad.write_text("name,family\ntraj-0000,circle\n")
    one_error(invoke("report", run_dir, "--labels", bad), 1, "header 'id,")
    assert not (run_dir / "report.html").exists()


@pytest.mark.slow
def test_output_must_be_html(runs: Runs, tmp_path: Path) -> None:
    run_dir = runs["crop-composite"]
    one_error(invoke("report", run_dir, "--output", tmp_path / "x.txt"), 2, "--output", ".html", "x.txt")
    assert not (tmp_path / "x.txt").exists()


@pytest.fixture(scope="module")
def last_report(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """What `evaluate --checkpoint last` prints, and the sections of `report --checkpoint last`."""
    tmp = tmp_path_factory.mktemp("last")
    run_dir = runs.copy("next-step-csv", tmp)
    printed, _ = evaluate_csv(run_dir, tmp, "--checkpoint", "last")
    ok(invoke("report", run_dir, "--checkpoint", "last"))
    return printed, sections((run_dir / "report.html").read_text())


@pytest.mark.slow
def test_last_checkpoint_report_uses_the_last_checkpoint(last_report: tuple[str, dict[str, str]]) -> None:
    printed, found = last_report
    assert "<th>checkpoint</th><td>last</td>" in found["run"]
    loss = re.search(r"loss \([a-z_]+, [a-z-]+\) │ ([0-9.]+) │", printed)
    assert loss and f"{loss.group(1)} (the number 'seqmask evaluate' prints)" in found["run"]
    # train calibrated the best checkpoint only
    assert "no anomaly detector for its last checkpoint" in found["anomalies"]


# --------------------------------------------------------------------------- the detector


@pytest.mark.slow
def test_without_a_detector_the_report_says_how_to_fit_one_and_output_and_open_work(
    runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_browser(*args: object, **kwargs: object) -> None:
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)  # no browser registered on this machine
    run_dir = runs.copy("crop-composite", tmp_path)
    (run_dir / "detector.json").unlink()
    target = tmp_path / "somewhere" / "else.html"  # a folder that does not exist yet
    text = ok(invoke("report", run_dir, "--output", target, "--open"))
    assert squeezed(f"wrote the report to {target}") in squeezed(text)
    assert squeezed(f"no web browser found here; open {target.resolve()} in one") in squeezed(text)
    assert not (run_dir / "report.html").exists()
    anomalies = sections(target.read_text())["anomalies"]
    assert f"'seqmask calibrate {run_dir}' fits one" in anomalies
    assert "<img" not in anomalies and "flagged" not in anomalies


@pytest.mark.slow
def test_no_validation_advice_names_the_data_calibrate_needs(runs: Runs) -> None:
    anomalies = sections(runs.report(NO_VALIDATION)[0])["anomalies"]
    assert "seqmask calibrate" in anomalies and "--data" in anomalies


@pytest.mark.slow
def test_last_checkpoint_advice_names_the_checkpoint(last_report: tuple[str, dict[str, str]]) -> None:
    _, found = last_report
    assert "seqmask calibrate" in found["anomalies"] and "--checkpoint last" in found["anomalies"]


# --------------------------------------------------------------------------- not a (finished) run


@pytest.mark.slow
def test_run_killed_before_its_first_checkpoint_is_an_error(runs: Runs, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("config.yaml", "normalization.json"):
        shutil.copy(runs["crop-composite"] / name, killed / name)
    line = one_error(invoke("report", killed), 1, "no best checkpoint")
    assert str(killed) in line
    assert sorted(p.name for p in killed.iterdir()) == ["config.yaml", "normalization.json"]


@pytest.mark.slow
def test_run_without_any_checkpoint_is_not_told_to_try_the_other(runs: Runs, tmp_path: Path) -> None:
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("config.yaml", "normalization.json"):
        shutil.copy(runs["crop-composite"] / name, killed / name)
    one_error(invoke("report", killed, "--checkpoint", "last"), 1, "no last checkpoint")
    line = one_error(invoke("report", killed), 1, "no best checkpoint")
    assert "--checkpoint last" not in line, line


def test_directory_that_is_not_a_run_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a run\n")
    one_error(invoke("report", tmp_path), 1, str(tmp_path), "is not a seqmask run directory")
    one_error(invoke("report", tmp_path / "missing"), 1, "missing", "is not a seqmask run directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
