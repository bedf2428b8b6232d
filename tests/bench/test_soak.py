"""bench/soak.py against a real server, briefly: it overloads, counts and recovers."""

from support.bench import load_bench_script


def test_the_soak_overloads_the_server_and_reports_what_it_promises(trained_bundle, capsys):
    soak = load_bench_script("soak")
    report = soak.main(
        [str(trained_bundle), "--seconds", "4", "--capacity-seconds", "2", "--reviews", "50"]
    )
    offered, capacity = (
        report["offered_requests_per_second"],
        report["capacity_requests_per_second"],
    )
    assert abs(offered - 3 * capacity) < 0.05  # both rounded to 2 places
    assert report["capacity_requests_per_second"] > 0
    assert set(report["statuses"]) <= {"200", "503"}, report["statuses"]
    assert sum(report["statuses"].values()) == report["requests"]
    assert report["accepted_p99_s"] is not None and report["accepted_p99_s"] < 30
    assert report["rss_peak_mb"] >= report["rss_before_mb"] > 0
    assert 0 <= report["recovery_s"] < 30
    assert '"statuses"' in capsys.readouterr().out
