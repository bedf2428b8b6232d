"""bench/ab_validity.py: the table of false winners and votes to a decision, from the real
decision code, written between its markers."""

from support.bench import load_bench_script


def test_the_validity_benchmark_writes_every_row_and_replaces_its_section(tmp_path, capsys):
    script = load_bench_script("ab_validity")
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nkept\n", encoding="utf-8")
    arguments = ["--runs", "4", "--decide-runs", "2", "--processes", "1", "--doc", str(doc)]
    assert script.main(arguments) == 0
    first = doc.read_text(encoding="utf-8")
    assert first.startswith("# Benchmarks\n\nkept\n")
    assert first.count(script.START_MARKER) == 1 and first.count(script.END_MARKER) == 1
    rows = [line for line in first.splitlines() if line.startswith(("| fixed", "| adaptive"))]
    assert len(rows) == len(script.ROWS) == 16
    assert "| split |" in first and "| paired shadow |" in first
    script.main(arguments)  # a re-run replaces the section rather than adding one
    assert doc.read_text(encoding="utf-8").count(script.START_MARKER) == 1
    assert "python bench/ab_validity.py --runs 4" in capsys.readouterr().out
