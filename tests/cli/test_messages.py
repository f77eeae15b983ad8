"""Library messages are log records (rank 0 only); the command lines show them on stderr,
notices and warnings alone under -q; a plain Python process sees warnings on stderr and no
INFO or notice."""

import logging
import os
import subprocess
import sys

from helpers import run_cli, save_modx

from sdtools.cli import main
from sdtools.log import NOTICE, cli_messages, get_logger, quiet_messages


def test_a_library_message_is_a_record_of_its_module_at_its_level(caplog, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    log = get_logger("sdtools.models.extract")
    with caplog.at_level(logging.INFO, logger="sdtools"):
        log.warning("cannot write %s", "x")
        log.info("note")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("sdtools.models.extract", "WARNING", "cannot write x"),
        ("sdtools.models.extract", "INFO", "note")]


def test_only_rank_zero_emits(caplog, monkeypatch):
    log = get_logger("modx.train.run")
    monkeypatch.setenv("RANK", "1")  # torchrun's other processes
    log.warning("from rank 1")
    monkeypatch.setenv("RANK", "0")
    log.warning("from rank 0")
    assert [r.getMessage() for r in caplog.records] == ["from rank 0"]


def test_the_command_line_handler_shows_info_and_under_quiet_notices_and_warnings(
        capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    log = get_logger("modx.study")
    before = logging.getLogger("modx").level
    with cli_messages(("sdtools", "modx")):
        log.info("cell 1/2")
        log.warning("stopped 1 job")
        quiet_messages(True)
        log.info("hidden")
        log.log(NOTICE, "building the report")
        log.warning("still said")
    log.info("after: the library is silent again")
    log.log(NOTICE, "and says no notice")
    err = capsys.readouterr().err
    assert err == ("cell 1/2\nwarning: stopped 1 job\nbuilding the report\n"
                   "warning: still said\n")
    assert logging.getLogger("modx").level == before


def test_a_process_that_configured_logging_sees_each_message_once(capsys, monkeypatch):
    """A caller with ``logging.basicConfig`` (a root handler on the terminal) saw every message
    of the command line twice: once from its handler, once from the root's."""
    monkeypatch.delenv("RANK", raising=False)
    root = logging.getLogger()
    mine = logging.StreamHandler(sys.stderr)
    mine.setFormatter(logging.Formatter("ROOT %(message)s"))
    root.addHandler(mine)
    try:
        with cli_messages(("sdtools",)):
            get_logger("sdtools.report").warning("one line")
        assert logging.getLogger("sdtools").propagate  # restored on exit
        get_logger("sdtools.report").warning("the library again")
    finally:
        root.removeHandler(mine)
    err = capsys.readouterr().err
    assert err.count("one line") == 1 and "warning: one line" in err
    assert "ROOT the library again" in err  # outside, the caller's logging is as it was


def test_the_cli_shows_a_library_warning_on_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SDTOOLS_CACHE", str(tmp_path / "cache"))
    save_modx(tmp_path / "a.pt")
    args = ["embed", tmp_path / "a.pt", "--data", "synthetic:n=5", "--out", tmp_path / "e.npz"]
    code, _, err = run_cli(main, args, capsys)
    assert code == 0 and "damaged" not in err, err
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(b"damaged")
    code, out, err = run_cli(main, [*args, "--force"], capsys)
    assert code == 0, err
    assert f"warning: embedding cache entry {entry.name} is damaged; recomputing it" in err
    assert "damaged" not in out  # messages on stderr, results on stdout


def _speaks(*_, **__):
    log = get_logger("sdtools.models.extract")
    log.info("a progress line")
    log.warning("a warning line")
    return {}


def test_quiet_on_either_cli_keeps_warnings_only(tmp_path, capsys, monkeypatch):
    """``-q`` drops the library's progress lines, not its warnings, in both command lines."""
    import modx.cli
    from sdtools.errors import UserError

    def stop(*a, **k):
        _speaks()
        raise UserError("stopped here")

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr("sdtools.cli.Ctx.embeddings", stop)
    monkeypatch.setattr(modx.cli, "_run", _speaks)
    save_modx(tmp_path / "a.pt")
    args = ["embed", tmp_path / "a.pt", "--data", "synthetic:n=4", "--out", tmp_path / "e.npz"]
    for run, argv in ((main, args), (modx.cli.main, ["train", "--out", tmp_path / "run"])):
        code, _, err = run_cli(run, argv, capsys)
        assert "a progress line\nwarning: a warning line\n" in err, err
        code, _, err = run_cli(run, [*argv, "-q"], capsys)
        assert "warning: a warning line" in err and "progress" not in err, err


def test_a_plain_process_sees_warnings_but_no_info():
    """Nothing configured: logging's last resort writes warnings to stderr; INFO and notices
    are dropped (no NullHandler on the package loggers, which would silence the warnings too)."""
    code = ("from sdtools.log import get_logger; log = get_logger('sdtools.models.extract'); "
            "log.info('an info line'); log.log(25, 'a notice'); log.warning('a warning line')")
    env = {k: v for k, v in os.environ.items() if k != "RANK"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and res.stderr == "a warning line\n"
