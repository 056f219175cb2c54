#!/usr/bin/env python
"""Reproduce every number, figure and page of the report on variational inference for MNIST.

    python reproduce.py --all              train and evaluate every section, then write the report
    python reproduce.py --only q4          rerun one section (its stale prerequisites first)
    python reproduce.py --list             what has results, from when, fresh or stale and why
    python reproduce.py --verify --only q1 recompute into a scratch folder and compare
    python reproduce.py --smoke --all      the whole pipeline on tiny sizes, in its own folder
    python reproduce.py --spread --seeds 0,1,2   every number's spread across seeds (verify's tolerances)
    python reproduce.py --spread --jitter 3      ... and across reruns of seed 0 whose rounding differs
    python reproduce.py --submission submission.zip   the zip the brief's section 4.3.3 asks for

AI-written code (brief, section 4.1.1): this script, like experiments/ and pipeline/, was written by
an AI coding assistant (Claude, by Anthropic).
"""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import click

from experiments.lib.seeds import SEED_MAX
from pipeline import SECTIONS
from pipeline.cache import ROOT

EXIT_INTERRUPTED = {2: 130, 15: 143}  # SIGINT, SIGTERM: 128 + signal number
PROGRAM = False  # run as the program (not called by a test): the process ends with the command, so a signal
# that stopped it leaves later ones ignored, and a second Ctrl-C cannot interrupt the exit itself
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away (`--verify | head -1`), as the shell reports it


class OneLineErrors(click.Command):
    """Every usage or run-time error is one line on stderr and a non-zero exit, never a traceback."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Abort:  # Ctrl-C before the signal handlers are in place
            click.echo("\ninterrupted by SIGINT before anything was written", err=True)
            sys.exit(EXIT_INTERRUPTED[2])
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            sys.exit(err.exit_code)
        except OSError as err:  # a disk that fills up, a folder that turns read-only during the run
            click.echo(f"error: {err.strerror or err}" + (f": {err.filename}" if err.filename else ""), err=True)
            sys.exit(1)
        sys.exit(code or 0)


def parse_sections(only: tuple[str, ...]) -> list[str]:
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise click.UsageError(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    return names


def writable(folder: Path) -> Path:
    """The folder, created if needed, after checking that a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise click.ClickException(f"cannot write to {folder}: {err.strerror or err}") from None
    return folder


def creatable(folder: Path) -> None:
    """ClickException unless ``folder`` is, or can be made, a writable folder; creates nothing."""
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "not a folder" if not existing.is_dir() else "not writable"
        raise click.ClickException(f"cannot write to {folder}: {existing} is {problem}")


def interrupted(signal_name: str, mode: str, out: Path | None) -> str:
    """What an interrupt left behind, true of the command that was running."""
    if out is None or mode == "list":
        return f"interrupted by {signal_name} before anything was written"
    if mode == "verify":
        return f"interrupted by {signal_name}: the verification stopped before comparing; {left_behind(mode, out)}"
    return f"interrupted by {signal_name}: {left_behind(mode, out)}"


def left_behind(mode: str, out: Path | None) -> str:
    """What a run that stopped early (a signal, a full disk, a dead worker) left in ``out``."""
    if out is None or mode == "list":
        return "nothing was written"
    if mode == "verify":
        return f"{out / 'results.json'} was only read and is unchanged"
    if mode == "render":
        return f"each PDF and README in {out} is the previous one or the new one, never a mix; rerun to finish"
    return (f"finished sections are saved in {out / 'results.json'} and their checkpoints; rerun the same command "
            "to finish the rest")


ACTIONS = {"run_all": "--all", "list_": "--list", "verify": "--verify", "spread": "--spread", "render_only": "--render",
           "submission": "--submission"}
# the options each action reads (--all's are --only's); one given on the command line that it does not read is refused
READS = {
    "--all": {"only", "smoke", "force", "data_dir", "out", "checkpoints", "device", "seed", "jobs", "threads"},
    "--list": {"smoke", "data_dir", "out", "checkpoints", "device", "seed", "jobs", "threads"},
    "--verify": {"only", "smoke", "data_dir", "out", "checkpoints", "device", "seed", "jobs", "threads"},
    "--spread": {"only", "seeds", "jitter", "smoke", "data_dir", "out", "checkpoints", "device", "seed", "jobs", "threads"},
    "--render": {"smoke", "out", "jobs"},
    "--submission": {"smoke", "out"},
}


def check_combination(params: dict) -> None:
    """UsageError for two actions at once, or an option the action does not read (it would be dropped silently)."""
    ctx = click.get_current_context()
    given = [name for name in params if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
    actions = [ACTIONS[name] for name in ACTIONS if name in given]
    if len(actions) > 1:
        raise click.UsageError(f"{actions[0]} and {actions[1]} are two different commands: give one of them")
    action = actions[0] if actions else "--only"
    for name in given:
        if name not in ACTIONS and name not in READS.get(action, READS["--all"]):
            option = "--" + name.replace("_", "-")
            raise click.UsageError(f"{option} does nothing with {action}: leave it out")


@click.command(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--all", "run_all", is_flag=True, help="Run every section in order (see --list), then write the report.")
@click.option("--only", multiple=True, metavar="SECTION",
              help="Run only these sections (repeat, or separate by commas); --list names them.")
@click.option("--list", "list_", is_flag=True, help="List each section: results or not, from when, wall time, headline, fresh or stale and why.")
@click.option("--verify", is_flag=True,
              help="Recompute the sections (all, or --only) in a scratch folder and compare every number with the registry.")
@click.option("--spread", is_flag=True,
              help="Run the sections (all, or --only) with each of --seeds in scratch folders and record the spread of "
                   "every number in the registry; --verify sets its cross-device tolerances from it.")
@click.option("--seeds", default="0,1,2", show_default=True, metavar="LIST", help="The seeds of --spread, comma-separated.")
@click.option("--jitter", type=click.IntRange(min=1), default=None, metavar="N",
              help="With --spread: instead of other seeds, N reruns at --seed with the parameters moved by one rounding "
                   "unit at each optimizer's first step, as another machine's rounding would; --verify prefers their "
                   "spread wherever it moved a number.")
@click.option("--render", "render_only", is_flag=True, help="Rebuild the PDFs and READMEs from the registry without running anything.")
@click.option("--submission", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="ZIP",
              help="Write the zip of the brief's section 4.3.3 (README with name and CSE username, the code, report.pdf) "
                   "from --out's report; refused while author.toml has no name or the report is stale.")
@click.option("--smoke", is_flag=True, help="Tiny sizes that run in about a minute, written to report-smoke/ (never report/).")
@click.option("--force", is_flag=True, help="Rerun the sections asked for even when their cached results are fresh.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="MNIST_DATA_DIR", default=None,
              show_envvar=True, help="Folder holding MNIST/raw/ (downloaded there when absent) [default: data/ in the "
              "repository, like the output folder's default]. A path you give is relative to the current folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder for results.json, figures and PDFs [default: report/, or report-smoke/ with --smoke].")
@click.option("--checkpoints", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for model checkpoints [default: checkpoints/<name>-<hash of the resolved output folder>, "
              "one per output folder].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto takes CUDA when present; cuda without CUDA is an error.")
@click.option("--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True,
              help=f"The one seed of every random draw, 0 to {SEED_MAX} (2^32 - 64: torch keeps 32 bits of a seed, "
              "and sections add offsets below 64), so that no two seeds draw the same numbers.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Sections computed at the same time, each in its own process; 1 computes in this process "
                   "[default: the number of CPU cores].")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch in each section, recorded with the results: another count rounds differently, "
                   "so the default does not depend on the machine [default: 1].")
def cli(run_all, only, list_, verify, spread, seeds, jitter, render_only, submission, smoke, force, data_dir, out, checkpoints, device, seed,
        jobs, threads):
    """Train every model of the exercise on MNIST, measure every number, draw every figure, and write
    report/report.pdf, report/supplement.pdf, report/companion.pdf, report/README.md and README.md from
    report/results.json."""
    selected = parse_sections(only)
    if run_all and selected:
        raise click.UsageError("--all and --only exclude each other: --all already runs every section")
    check_combination(click.get_current_context().params)
    if not (run_all or selected or list_ or verify or spread or render_only or submission):
        raise click.UsageError("nothing to do: give --all, --only SECTION, --list, --verify, --spread, --render or "
                               "--submission (see --help)")
    seed_list = parse_seeds(seeds) if spread else []
    if jitter and click.get_current_context().get_parameter_source("seeds") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--jitter reruns at --seed instead of running --seeds: give one of them")
    from pipeline.interrupts import Interrupted, interruptible
    from pipeline.workers import WorkerDied

    mode = "list" if list_ or submission else "verify" if verify else "render" if render_only else "run"
    folder = None
    try:
        with interruptible(final=PROGRAM), one_line():
            if render_only:  # reads the registry only: no torch, device or data
                folder = output_folder(out, smoke)
                with prepared(folder):
                    return render(folder, jobs or cores(), smoke)
            if submission is not None:  # reads the report and the registry only, and writes the zip at the end
                folder = output_folder(out, smoke)
                with prepared(folder):
                    return pack(folder, submission)
            opts = options(out, checkpoints, data_dir, device, seed, jobs, threads, smoke, force)
            folder = opts.out
            if list_:
                return list_sections(opts)
            if verify:
                from pipeline.verify import verify as run_verify
                return run_verify(opts, selected or list(SECTIONS))
            with prepared(opts.out, opts.checkpoints, opts.data_dir):
                if spread:
                    from pipeline.spread import record_spread
                    return record_spread(opts, selected or list(SECTIONS), seed_list, jitter or 0)
                execute(opts, selected or list(SECTIONS), full=run_all)
                render(opts.out, opts.jobs, opts.smoke, opts.checkpoints)
    except Interrupted as err:
        click.echo("\n" + interrupted(str(err), mode, folder), err=True)
        return EXIT_INTERRUPTED.get(err.signum, 1)
    except BrokenPipeError:  # the reader went away: no failure of the run, so quiet, and no error again at exit's flush
        with contextlib.suppress(OSError, ValueError):  # a stdout without a file descriptor (a test's) stays
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as err:  # a disk that fills up, a folder that turns read-only during the run
        where = f": {err.filename}" if err.filename else ""
        raise click.ClickException(f"{err.strerror or err}{where}; {left_behind(mode, folder)}") from None
    except WorkerDied as err:  # the other sections were finished and kept
        raise click.ClickException(f"{err}; {left_behind(mode, folder)}") from None
    return 0


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of integers", param_hint="--seeds") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) > SEED_MAX:
        raise click.BadParameter(f"give at least two different seeds from 0 to {SEED_MAX}", param_hint="--seeds")
    return seeds


ONE_LINE_ERRORS = (("experiments.lib.data", "DataError"), ("pipeline.checkpoints", "CheckpointBlocked"),
                   ("pipeline.registry", "RegistryError"), ("pipeline.typeset", "RenderError"),
                   ("pipeline.submission", "SubmissionError"))  # (module, class)


@contextlib.contextmanager
def one_line():
    """The pipeline's own errors (one-line messages that say what to do) as click errors: no traceback."""
    try:
        yield
    except Exception as err:
        # an error whose module was never imported was not raised: --render never imports torch for these
        kinds = tuple(getattr(sys.modules[module], name) for module, name in ONE_LINE_ERRORS if module in sys.modules)
        if isinstance(err, kinds):
            raise click.ClickException(str(err)) from None
        raise


def output_folder(out: Path | None, smoke: bool) -> Path:
    """--out, or its default, where pipeline/folders.py allows a run to write (never report/ for --smoke)."""
    from pipeline.folders import output_problem

    out = out if out is not None else ROOT / ("report-smoke" if smoke else "report")
    if problem := output_problem(out, smoke):
        raise click.UsageError(problem)
    return out


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def options(out, checkpoints, data_dir, device, seed, jobs, threads, smoke, force):
    """Resolve defaults, check the device, fix threads and determinism; creates nothing."""
    from experiments.lib.runtime import DeviceError, configure_determinism, resolve_device
    from pipeline.checkpoints import default_folder
    from pipeline.folders import checkpoint_problem
    from pipeline.runner import Options

    out = output_folder(out, smoke)
    try:
        dev = resolve_device(device)
    except DeviceError as err:
        raise click.ClickException(str(err)) from None
    threads = threads or 1
    configure_determinism(threads)
    checkpoints = checkpoints if checkpoints is not None else default_folder(out)
    if problem := checkpoint_problem(checkpoints):
        raise click.UsageError(problem)
    return Options(out=out, checkpoints=checkpoints, data_dir=data_dir if data_dir is not None else ROOT / "data",
                   device=dev, seed=seed, threads=threads, smoke=smoke, force=force, jobs=jobs or cores())


@contextlib.contextmanager
def prepared(out: Path, checkpoints: Path | None = None, data_dir: Path | None = None):
    """Check everything that can be checked before any training (what rendering needs; for a run, given the
    checkpoint and data folders, the data), then create the folders, check that each is writable, and hold
    the lock on each for the whole run."""
    from pipeline.registry import locked
    from pipeline.render import check_inputs, check_outputs

    check_inputs()
    check_outputs(out, top_readme(out))
    folders = [out, out / "figures", *([checkpoints] if checkpoints is not None else [])]
    for folder in folders:
        creatable(folder)
    if data_dir is not None:
        from experiments.lib.data import fetch, verify_raw

        fetch(data_dir)
        verify_raw(data_dir)
    for folder in folders:
        writable(folder)
    say = lambda message: click.echo(message, err=True)  # noqa: E731
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys(f.resolve() for f in (out, *folders[2:])):
            stack.enter_context(locked(folder, say))
        yield


def execute(opts, selected: list[str], full: bool) -> None:
    from pipeline.runner import Runner

    start = time.perf_counter()
    runner = Runner(opts)
    runner.run(selected)
    if full and len(runner.executed) == len(SECTIONS):
        prov = runner.provenance()
        runner.registry.put_meta("full_run", {"wall_time_s": time.perf_counter() - start,
                                              "finished_at": prov["time"], "commit": prov["commit"]})


def top_readme(out: Path) -> Path | None:
    """The repository's README.md, which the real report's render (and only it) rewrites."""
    return ROOT / "README.md" if out.resolve() == (ROOT / "report").resolve() else None


def rerun_command(out: Path, smoke: bool, checkpoints: Path | None) -> str:
    """The command that reruns a section into ``out``: with --smoke, and --checkpoints when not the default."""
    command = ["python", "reproduce.py", *(["--smoke"] if smoke else []), "--out", str(out)]
    if checkpoints is not None:
        from pipeline.checkpoints import default_folder

        if Path(checkpoints).resolve() != default_folder(out).resolve():
            command += ["--checkpoints", str(checkpoints)]
    return shlex.join(command)


def render(out: Path, jobs: int, smoke: bool, checkpoints: Path | None = None) -> None:
    """Write the PDFs and READMEs of ``out``; ``checkpoints`` (a run's) goes into the advice to rerun a section."""
    from pipeline import render as rd
    from pipeline.registry import Registry

    registry = Registry(out / "results.json").valid_data()
    readme = top_readme(out)
    smoke = smoke or any(entry.get("smoke") for entry in registry.get("sections", {}).values())
    pages = rd.build(registry, rd.titles(registry), out, readme, jobs=jobs, command=rerun_command(out, smoke, checkpoints))
    counts = ", ".join(f"{out / f'{name}.pdf'} ({n} page{'s' if n != 1 else ''}"
                       + (f" of {rd.PAGE_BUDGET})" if name == "report" else ")") for name, n in pages.items())
    click.echo(f"wrote {counts}" + (f" and {readme}" if readme else ""), err=True)


def pack(out: Path, target: Path) -> int:
    """The submission zip of ``out``'s report: what went in and its size."""
    from pipeline.submission import write

    members = write(out, target)
    for name, size in members:
        click.echo(f"  {name:56} {size:>10,} bytes")
    click.echo(f"wrote {target}: {len(members)} files, {target.stat().st_size:,} bytes")
    return 0


def list_sections(opts) -> int:
    """One line per section (and why it is stale); reads the output folder, writes nothing anywhere."""
    from pipeline.registry import lookup
    from pipeline.runner import Runner, section_module

    runner = Runner(opts)
    reasons = {name: runner.status(name) for name in SECTIONS}
    click.echo(f"{'section':8} {'state':6} {'finished':26} {'wall':>8}  headline")
    stale = []
    for name in SECTIONS:
        entry, module = runner.registry.entry(name), section_module(name)
        state = "fresh" if not reasons[name] else "stale" if runner.registry.recorded(name) else "none"
        when = entry["finished_at"] if entry else "-"
        wall = f"{entry['wall_time_s']:.1f}s" if entry else "-"
        key, label = module.HEADLINE
        value = lookup(entry["metrics"], key) if entry else None
        headline = f"{label} = {value:.4g}" if isinstance(value, (int, float)) else "-"
        click.echo(f"{name:8} {state:6} {when:26} {wall:>8}  {headline}")
        if reasons[name] and state == "stale":
            click.echo(f"{'':8} why: {'; '.join(reasons[name])}")
            stale.append(entry["wall_time_s"] if entry else 0.0)
    if stale:
        click.echo(f"\n{len(stale)} section(s) with results would rerun; they took {sum(stale) / 60:.1f} minutes one after "
                   f"another where they were recorded (sections run {opts.jobs} at a time here).")
    return 0


if __name__ == "__main__":
    PROGRAM = True
    cli()
