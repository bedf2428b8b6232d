"""Each worker's figures in a file of its own; the worker that answers reads them all."""

import asyncio
import json

from critic.serving.workers import FOLDER, WorkerStats


def test_a_worker_gathers_its_own_fresh_figures_and_the_others_published_ones(tmp_path):
    folder = tmp_path / FOLDER
    folder.mkdir()
    (folder / "101.json").write_text(json.dumps({"worker": 101}))
    (folder / "102.json").write_text('{"worker": 1')  # half a file: skipped, not an error
    (folder / "103.json.tmp").write_text("{}")  # not yet renamed into place: not read
    stats = WorkerStats(tmp_path, snapshot=lambda: {"worker": "stale"})
    gathered = stats.gather({"worker": "me"})
    assert gathered == [{"worker": "me"}, {"worker": 101}]
    assert json.loads(stats.path.read_text()) == {"worker": "me"}


def test_a_worker_publishes_on_its_own_and_only_what_changed(tmp_path):
    figures = {"copies": 0}
    writes = []

    async def run():
        stats = WorkerStats(tmp_path, snapshot=lambda: dict(figures), period_s=0.01)
        original = stats._write
        stats._write = lambda data: (writes.append(data), original(data))
        stats.start()
        await asyncio.sleep(0.1)
        figures["copies"] = 3
        await asyncio.sleep(0.1)
        stats.stop()
        return stats

    stats = asyncio.run(run())
    assert writes == [b'{"copies":0}', b'{"copies":3}']
    assert json.loads(stats.path.read_text()) == {"copies": 3}
