"""Job scripts report a bad input by its message alone, in the job log and on the console Snakemake shows."""

import os
import subprocess
import sys
import textwrap

# a job script as the rules run them: start_job first, then the work, which fails here
SCRIPT = textwrap.dedent("""
    import sys
    from types import SimpleNamespace
    from debias.jobs import start_job

    start_job(SimpleNamespace(log=[sys.argv[1]], resources={}, threads=1))
    print("working")
    if sys.argv[2] == "input":
        from debias.data.fairface import FairFaceFormatError
        raise FairFaceFormatError("labels.csv, line 7: race 'Martian' is not one of White, Black")
    raise RuntimeError("a bug")
""")
MESSAGE = "Error: labels.csv, line 7: race 'Martian' is not one of White, Black"


def run_job(tmp_path, kind, verbose=False):
    log = tmp_path / "logs" / "job.log"
    env = {k: v for k, v in os.environ.items() if k != "DEBIAS_VERBOSE"}
    if verbose:
        env["DEBIAS_VERBOSE"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log), kind], capture_output=True, text=True, env=env,
                          timeout=120)
    return proc, log.read_text()


def test_input_error_is_its_message_alone_in_the_log_and_on_the_console(tmp_path):
    proc, log = run_job(tmp_path, "input")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [MESSAGE, f"(job log: {tmp_path / 'logs' / 'job.log'})"]
    assert proc.stdout == ""  # the job's own output went to the log
    assert log.splitlines()[:2] == ["working", MESSAGE]
    assert "Traceback" not in log and "--verbose" in log


def test_verbose_input_error_keeps_the_traceback_in_the_log(tmp_path):
    proc, log = run_job(tmp_path, "input", verbose=True)
    assert proc.returncode == 1 and proc.stderr.splitlines()[0] == MESSAGE
    assert log.splitlines()[1] == MESSAGE and "Traceback (most recent call last)" in log
    assert "FairFaceFormatError" in log


def test_other_errors_keep_their_traceback(tmp_path):
    proc, log = run_job(tmp_path, "bug")
    assert proc.returncode == 1 and proc.stderr.splitlines()[0] == "Error: RuntimeError: a bug"
    assert "Traceback (most recent call last)" in log and log.rstrip().endswith("RuntimeError: a bug")


def test_every_error_class_of_the_data_readers_is_an_input_error():
    """Each reader's error names the file and what was expected, so a job shows it alone (InputError); a reader's
    error class outside that family would end a job in a traceback."""
    import importlib
    import inspect
    import pkgutil

    import debias.data
    from debias.errors import InputError

    classes = {}
    for info in pkgutil.walk_packages(debias.data.__path__, "debias.data."):
        module = importlib.import_module(info.name)
        classes.update({f"{info.name}.{name}": cls for name, cls in inspect.getmembers(module, inspect.isclass)
                        if issubclass(cls, Exception) and cls.__module__ == info.name})
    assert {"debias.data.coco.CocoFormatError", "debias.data.waterbirds.WaterbirdsFormatError",
            "debias.data.download.DownloadError", "debias.data.fairface.FairFaceFormatError"} <= set(classes)
    assert [name for name, cls in classes.items() if not issubclass(cls, InputError)] == []
