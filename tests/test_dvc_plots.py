"""dvc.yaml's plots render: `dvc plots show`, in a scratch DVC project holding the committed files the plots read,
draws every plot and sets every figure of the report (reports/figures) in its page as an image."""

from __future__ import annotations

import shutil
import subprocess
import sys

PLOTTED = ("reports/figures", "results/plots", "results/tune")  # what dvc.yaml's plots read, committed to git


def test_dvc_plots_show_renders_every_plot_and_sets_every_figure_of_the_report_as_an_image(tmp_path, repo_root):
    figures = sorted((repo_root / "reports" / "figures").glob("*.png"))
    assert figures, "no committed figures to show"
    shutil.copy2(repo_root / "dvc.yaml", tmp_path)
    for folder in PLOTTED:
        shutil.copytree(repo_root / folder, tmp_path / folder)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "--quiet"], cwd=tmp_path, check=True)

    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--out", "page"], cwd=tmp_path, capture_output=True, text=True
    )

    assert shown.returncode == 0 and "failed" not in shown.stdout + shown.stderr, shown.stdout + shown.stderr
    page = (tmp_path / "page" / "index.html").read_text()
    for figure in figures:
        image = f"static/workspace_reports_figures_{figure.name}"
        assert f'<img src="{image}">' in page, f"{figure.name} is not on the page"
        assert (tmp_path / "page" / image).read_bytes() == figure.read_bytes(), f"{figure.name} shown changed"
