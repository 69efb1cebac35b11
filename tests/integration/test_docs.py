#!/usr/bin/env python3
"""The documentation says what the binary does.  The binary's own tables
(cli/opts.c, cli/commands.c) are the reference, read through what is made
from them: --help (names, short names, arguments), the "use a, b or c" of
an invalid value (an option's fixed values), the completion helper, and
/help in a session.

Checked against them: the manual page's OPTIONS section for each
subcommand (option names, their arguments, their value lists), its
SUBCOMMANDS, SYNOPSIS and SESSION COMMANDS, README's usage lines and
session command table, and the bash, zsh and fish completions (options,
values, subcommands, session PIDs), which none of them offers more than.
The exit statuses (core/err.h) are checked across the manual page and
README the same way.

The completions are asked for real where the shell allows it, with
`ktlsctl` on PATH as when installed: bash runs _ktlsctl with COMP_WORDS
set, fish answers `complete -C`; zsh runs the completion function with
_describe, _files and _hosts replaced by functions that print what they
are given (its real ones need a terminal)."""

import os
import re
import shutil
import subprocess
import tempfile
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL  # noqa: E402
from ktlsctl_test.channel import CHANNEL_ARGS  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402
from ktlsctl_test.procs import check_exit, ktlsctl, ktlsctl_listen  # noqa: E402

suite = Suite("test_docs", case_timeout=60)
TOP = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(TOP, "man", "ktlsctl.1")
README = os.path.join(TOP, "README.md")
COMPLETIONS = os.path.join(TOP, "completions")
SUBCOMMANDS = ["connect", "listen", "selftest", "stats", "keyupdate", "tickets", "probe"]
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9.-]*)")

# The manual page's OPTIONS subsections that describe each subcommand;
# -h/--help (General) applies to every one.
MAN_SECTIONS = {
    "": ["General"],
    "connect": ["Options for connect, listen and probe", "Options for connect and listen",
                "Options for connect and probe", "Options for connect only"],
    "listen": ["Options for connect, listen and probe", "Options for connect and listen",
               "Options for listen only"],
    "selftest": ["Options for selftest"],
    "stats": ["Options for stats"],
    "keyupdate": ["Options for keyupdate"],
    "tickets": ["Options for tickets"],
    "probe": ["Options for connect, listen and probe", "Options for connect and probe",
              "Options for probe"],
}


def run(argv, env=None, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       stdin=subprocess.DEVNULL, env=env, **kw)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# ------------------------------------------------------- what the binary says

def help_text(sub):
    rc, out, err = run([KTLSCTL] + ([sub] if sub else []) + ["--help"])
    if rc != 0:
        raise Fail("ktlsctl %s --help exited %d: %s" % (sub, rc, err))
    return out


def help_arguments(sub):
    """{option: its argument or None} from the option lines of --help
    ("  -k, --keep-open", "      --cipher NAME"); a short name maps to its
    long name's argument."""
    opts = {}
    for line in help_text(sub).splitlines():
        m = re.match(r"^  (?:(-\w), )?\s*(--[a-z0-9.-]+)(?: ([A-Z\[]\S*))?(?:\s{2,}|$)", line)
        if m:
            for name in m.group(1, 2):
                if name:
                    opts[name] = m.group(3)
    if not opts:
        raise Fail("ktlsctl %s --help lists no options" % sub)
    return opts


def help_options(sub):
    return set(help_arguments(sub))


def usage_line(sub):
    """'ktlsctl listen [ADDR]:PORT --cert FILE --key FILE [OPTIONS]'"""
    m = re.match(r"^Usage: (.*)$", help_text(sub), re.M)
    if not m:
        raise Fail("ktlsctl %s --help has no Usage line" % sub)
    return m.group(1)


def top_commands():
    """[(name, 'name ARGS')] from the Commands of `ktlsctl --help`."""
    block = help_text("").split("Commands:", 1)[1].split("Options:", 1)[0]
    rows = [re.split(r"\s{2,}", l.strip())[0] for l in block.splitlines() if l.strip()]
    return [(r.split()[0], r) for r in rows]


def option_values(sub, opt):
    """The fixed values of an option, in the table's order, from the message
    for a value it does not take; None for an option that takes any."""
    # In a scratch directory: an option that takes any value (--output)
    # runs the command, which may write its file.
    with tempfile.TemporaryDirectory() as scratch:
        rc, out, err = run([KTLSCTL, sub, "%s=%s" % (opt, "NOT-A-VALUE")], cwd=scratch)
    m = re.search(r"'NOT-A-VALUE': use (.*)$", err, re.M)
    if not m:
        return None
    if rc != 2:
        raise Fail("ktlsctl %s %s=NOT-A-VALUE exited %d, not 2" % (sub, opt, rc))
    return re.split(r", | or ", m.group(1))


def valued_options(sub):
    """{option: [values]} for the options of sub that take a fixed list."""
    lists = {}
    for opt, arg in help_arguments(sub).items():
        if arg and opt.startswith("--"):
            values = option_values(sub, opt)
            if values:
                lists[opt] = values
    return lists


# ----------------------------------------------------------- the manual page

def man_source():
    with open(MAN, encoding="utf-8") as f:
        return f.read().replace("\\-", "-")


def man_sections(level):
    """{title: lines} for every .SH (level 'SH') or .SS section."""
    sections, title = {}, None
    for line in man_source().splitlines():
        m = re.match(r"^\.(SH|SS) \"?(.*?)\"?$", line)
        if m and m.group(1) == level:
            title = m.group(2)
            sections[title] = []
        elif m and level == "SS" and m.group(1) == "SH":
            title = None
        elif title is not None:
            sections[title].append(line)
    return sections


def tags(lines):
    """The tag line of every .TP item."""
    return [lines[i + 1] for i, l in enumerate(lines[:-1]) if l.startswith(".TP")]


def items(lines):
    """[(tag, body)] of the .TP items at the outer level: the body ends at
    the next outer .TP, and holds any .RS ... .RE block inside the item."""
    out, depth, i = [], 0, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".TP") and depth == 0 and i + 1 < len(lines):
            out.append((lines[i + 1], []))
            i += 2
            continue
        depth += line.startswith(".RS") - line.startswith(".RE")
        if out:
            out[-1][1].append(line)
        i += 1
    return out


FONT = re.compile(r"\\f(?:[BIRP]|\(..)")
ALTERNATING = {"BR", "BI", "IB", "IR", "RB", "RI"}


def roff_text(line):
    """What a line of the page shows: '.BI --cipher " NAME"' is
    '--cipher NAME', '.BR linger [= \\fISECS\\fP]' is 'linger[=SECS]'."""
    m = re.match(r"^\.([BIR]{1,2})(?:\s+(.*))?$", line)
    if m:
        args = [a.group(1) if a.group(1) is not None else a.group(2)
                for a in re.finditer(r'"([^"]*)"|(\S+)', m.group(2) or "")]
        line = ("" if m.group(1) in ALTERNATING else " ").join(args)
    return FONT.sub("", line).replace("\\ ", " ").replace("\\(aq", "'")


def man_items(sub):
    """[(tag text, body)] of the OPTIONS items that apply to sub."""
    sections = man_sections("SS")
    found = []
    for title in MAN_SECTIONS[sub] + ([] if sub == "" else ["General"]):
        if title not in sections:
            raise Fail("the manual page has no section %r" % title)
        found += [(roff_text(tag), body) for tag, body in items(sections[title])]
    return found


def man_arguments(sub):
    """{option: its argument or None}, as for help_arguments."""
    opts = {}
    for tag, _ in man_items(sub):
        m = re.match(r"^(?:(-\w), )?(--[\w.-]+)(?: (\S+))?$", tag)
        if not m:
            raise Fail("man OPTIONS item %r is not '[-x, ]--option [ARG]'" % tag)
        for name in m.group(1, 2):
            if name:
                opts[name] = m.group(3)
    if sub:
        opts.pop("-V", None)        # General's, for the top level only
        opts.pop("--version", None)
    return opts


def man_values(sub, opt):
    """The values an option's item lists: the tags of its .RS block
    ('linger[=SECS]' stands for linger and linger=SECS), else the bold
    words of its text ('.BR AES-128-GCM ,')."""
    for tag, body in man_items(sub):
        if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), tag):
            continue
        listed = [roff_text(t) for t in tags(body)]
        if not listed:
            listed = [m.group(1) for m in (re.match(r'^\.BR? "?([^-" ][^" ]*)', l) for l in body)
                      if m]
        values = []
        for v in listed:
            m = re.match(r"^(.*)\[=(.*)\]$", v)
            values += [m.group(1), "%s=%s" % m.group(1, 2)] if m else [v]
        return values
    raise Fail("the manual page describes no %s for %s" % (opt, sub or "the program"))


# ----------------------------------------------------------------- README

def readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------- completions

def shell_env(with_ktlsctl, extra_env):
    """The environment of a shell that completes: `ktlsctl` on PATH, as
    installed (or, to see the completions do without it, not at all)."""
    bindir = os.path.join(suite.tmpdir(), "bin")
    if not os.path.isdir(bindir):
        os.makedirs(bindir)
        os.symlink(os.path.abspath(KTLSCTL), os.path.join(bindir, "ktlsctl"))
    path = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(":")
            if d and not os.path.exists(os.path.join(d, "ktlsctl"))]
    env = dict(os.environ, PATH=":".join(([bindir] if with_ktlsctl else []) + path))
    env.update(extra_env or {})
    return env


def need(shell):
    path = shutil.which(shell)
    if not path:
        raise Fail("%s is not installed (./bootstrap installs it): its completion cannot be checked"
                   % shell)
    return path


def bash_completion(words, with_ktlsctl=True, extra_env=None):
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ktlsctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    rc, out, err = run([need("bash"), "-c", script, "bash",
                        os.path.join(COMPLETIONS, "ktlsctl.bash"), "ktlsctl"] + words,
                       env=shell_env(with_ktlsctl, extra_env))
    if rc != 0 or err:
        raise Fail("bash completion of %r failed (%d): %s" % (words, rc, err))
    return {l for l in out.splitlines() if l}


def fish_completion(line, with_ktlsctl=True, extra_env=None):
    rc, out, err = run([need("fish"), "--no-config", "-c",
                        'source $argv[1]; complete -C $argv[2]',
                        os.path.join(COMPLETIONS, "ktlsctl.fish"), line],
                       env=shell_env(with_ktlsctl, extra_env))
    if rc != 0 or err:
        raise Fail("fish completion of %r failed (%d): %s" % (line, rc, err))
    return {l.split("\t")[0] for l in out.splitlines() if l}


# _describe prints the words of the arrays it is given; _files and _hosts
# say that they were called.
ZSH_STUB = r'''
file=$1; shift
_describe() {
	local arr a
	for arr in "${@:3}"; do
		[[ $arr == [[:alpha:]_]* && ${(tP)arr} == array* ]] || continue
		for a in "${(@P)arr}"; do
			a=${a//\\:/$'\0'}
			a=${a%%:*}
			print -r -- "${a//$'\0'/:}"
		done
	done
}
_files() { print -r -- ":file" }
_hosts() { print -r -- ":host" }
words=(ktlsctl "$@") CURRENT=$(( $# + 1 ))
source $file
'''


def zsh_completion(words, with_ktlsctl=True, extra_env=None):
    rc, out, err = run([need("zsh"), "-f", "-c", ZSH_STUB, "zsh",
                        os.path.join(COMPLETIONS, "_ktlsctl")] + words,
                       env=shell_env(with_ktlsctl, extra_env))
    if err:
        raise Fail("zsh completion of %r printed errors: %s" % (words, err))
    return {l for l in out.splitlines() if l}


def each_shell(words, extra_env=None):
    """{shell: what it offers} for the words after 'ktlsctl', the last one
    being completed."""
    return {"bash": bash_completion(words, extra_env=extra_env),
            "fish": fish_completion(" ".join(["ktlsctl"] + words), extra_env=extra_env),
            "zsh": zsh_completion(words, extra_env=extra_env)}


def compare(what, have, want, reference="--help"):
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        raise Fail("%s: %s%s%s" % (what,
                                   "lacks %s" % " ".join(missing) if missing else "",
                                   "; " if missing and extra else "",
                                   "offers %s, which %s does not list" % (" ".join(extra), reference)
                                   if extra else ""))


# ------------------------------------------------------------------ options

for _sub in SUBCOMMANDS + [""]:
    _name = _sub or "(top level)"

    def _man(sub=_sub, name=_name):
        compare("man page OPTIONS for %s" % name, set(man_arguments(sub)), help_options(sub))
    suite.add("man page: every %s option of --help is described, and no other" % _name, _man)

    def _man_args(sub=_sub, name=_name):
        have, want = man_arguments(sub), help_arguments(sub)
        wrong = ["%s %s (--help: %s)" % (o, have[o] or "without an argument",
                                         want[o] or "none")
                 for o in sorted(want) if o in have and have[o] != want[o]]
        if wrong:
            raise Fail("man page OPTIONS for %s: %s" % (name, "; ".join(wrong)))
    suite.add("man page: every %s option takes the argument --help names" % _name, _man_args)

    def _man_values(sub=_sub, name=_name):
        for opt, values in valued_options(sub).items():
            compare("man page: %s %s's values" % (name, opt), set(man_values(sub, opt)),
                    set(values), "the table")
    suite.add("man page: the values of every %s option with a fixed list are the table's" % _name,
              _man_values)

    def _bash(sub=_sub, name=_name):
        words = ([sub] if sub else []) + ["-"]
        compare("bash completion of 'ktlsctl %s -'" % name, bash_completion(words), help_options(sub))
    suite.add("bash completion: %s offers exactly the options of --help" % _name, _bash)

    def _fish(sub=_sub, name=_name):
        line = "ktlsctl %s-" % (sub + " " if sub else "")
        compare("fish completion of %r" % line, fish_completion(line), help_options(sub))
    suite.add("fish completion: %s offers exactly the options of --help" % _name, _fish)

    def _zsh(sub=_sub, name=_name):
        words = ([sub] if sub else []) + ["-"]
        compare("zsh completion of 'ktlsctl %s -'" % name, zsh_completion(words), help_options(sub))
    suite.add("zsh completion: %s offers exactly the options of --help" % _name, _zsh)


def completion_words(values):
    """What completes a value list: a value with a parameter up to its '='."""
    return {v.split("=")[0] + ("=" if "=" in v else "") for v in values}


@suite.case("completions: every shell offers exactly the table's values of each option with a list")
def _values():
    for sub in SUBCOMMANDS:
        for opt, values in valued_options(sub).items():
            want = completion_words(values)
            for shell, have in each_shell([sub, opt, ""]).items():
                compare("%s completion of 'ktlsctl %s %s '" % (shell, sub, opt), have, want,
                        "the table")
    for sub in ("connect", "listen"):
        # as one word with the option
        have = bash_completion([sub, "--ktls", "=", ""])
        compare("bash completion of 'ktlsctl %s --ktls='" % sub, have,
                completion_words(option_values(sub, "--ktls")), "the table")
        have = fish_completion("ktlsctl %s --ktls=" % sub)
        compare("fish completion of 'ktlsctl %s --ktls='" % sub, have,
                {"--ktls=" + v for v in option_values(sub, "--ktls")}, "the table")


@suite.case("completions: file and host arguments are left to the shell")
def _files_and_hosts():
    part, want = os.path.join(TOP, "READM"), os.path.join(TOP, "README.md")
    for shell, have in each_shell(["connect", "--session-in", part]).items():
        if want not in have and have != {":file"}:      # zsh's stub says :file
            raise Fail("%s completion of --session-in %s offers %s, not README.md"
                       % (shell, part, sorted(have)))
    if zsh_completion(["connect", ""]) != {":host"}:
        raise Fail("zsh completion of 'ktlsctl connect ' does not complete host names")


@suite.case("completions: without ktlsctl on PATH, no errors and no lists of their own")
def _no_binary():
    for words in (["con"], ["connect", "--ktls", ""], ["stats", ""]):
        if bash_completion(words, with_ktlsctl=False):
            raise Fail("bash completion of %r without ktlsctl offers something" % words)
        zsh = zsh_completion(words, with_ktlsctl=False)
        if zsh != {":file"}:
            raise Fail("zsh completion of %r without ktlsctl: %s, not file names" % (words, zsh))
        fish = fish_completion(" ".join(["ktlsctl"] + words), with_ktlsctl=False)
        if fish & {"connect", "auto"}:
            raise Fail("fish completion of %r without ktlsctl: %s" % (words, sorted(fish)))
    for name in ("ktlsctl.bash", "_ktlsctl", "ktlsctl.fish"):
        with open(os.path.join(COMPLETIONS, name), encoding="utf-8") as f:
            text = f.read()
        for fact in ("AES-128-GCM", "require", "linger", ".sock", "XDG_RUNTIME_DIR", "--cafile"):
            if fact in text:
                raise Fail("completions/%s names %r: it should ask ktlsctl" % (name, fact))


@suite.case("completions: every shell offers the PIDs of the running sessions")
def _pids():
    rundir = os.path.join(suite.tmpdir(), "run")
    os.makedirs(rundir, mode=0o700)
    env = {"XDG_RUNTIME_DIR": rundir}
    cert, key = suite.certs.srv_ec
    srv, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *CHANNEL_ARGS,
                               extra_env=env)
    cli = ktlsctl("connect", "127.0.0.1:%d" % port, "--insecure", "-q", "--eof", "close",
                  *CHANNEL_ARGS, stdin=True, extra_env=env)
    try:
        cli.send(b"ping\n")
        if not cli.wait_out(5, 15):
            raise Fail("the session did not start\n%s" % cli.describe())
        want = {str(srv.pid), str(cli.pid)}
        for words in (["stats", ""], ["keyupdate", "-q", ""], ["tickets", "--json", ""]):
            for shell, have in each_shell(words, env).items():
                compare("%s completion of 'ktlsctl %s'" % (shell, " ".join(words)), have, want,
                        "the control socket directory")
        for shell, have in each_shell(["tickets", str(cli.pid), ""], env).items():
            if have:
                raise Fail("%s completion offers %s after the PID" % (shell, sorted(have)))
    finally:
        cli.close_stdin()
        check_exit(cli, 0, 20, "ktlsctl connect")
        srv.kill()


# ------------------------------------------------------------- subcommands

@suite.case("subcommands: --help, the man page's SUBCOMMANDS and all three completions name the same")
def _subcommands():
    want = [name for name, _ in top_commands()]
    if want != SUBCOMMANDS:
        raise Fail("ktlsctl --help lists %s; this test knows %s: update one of them" % (want, SUBCOMMANDS))
    man = [roff_text(tag) for tag, _ in items(man_sections("SH")["SUBCOMMANDS"])]
    for name, synopsis in top_commands():
        if synopsis not in man:
            raise Fail("the man page's SUBCOMMANDS has no item %r, as ktlsctl --help lists it "
                       "(its items: %s)" % (synopsis, ", ".join(map(repr, man))))
    for shell, have in each_shell([""]).items():
        compare("%s completion of 'ktlsctl '" % shell, {w for w in have if not w.startswith("-")},
                set(want))


def synopses(text):
    """The first line that starts with 'ktlsctl SUBCOMMAND', by subcommand."""
    lines = {}
    for m in re.finditer(r"^ktlsctl (%s)\b.*$" % "|".join(SUBCOMMANDS), text, re.M):
        lines.setdefault(m.group(1), m.group(0).strip())
    return lines


def check_synopsis(what, line, sub):
    """line is the usage line of --help, or its start followed by optional
    options that sub has, with the arguments --help names."""
    usage = usage_line(sub)
    start = usage[:-len("[OPTIONS]")].strip()
    if line != usage and not (line + " ").startswith(start + " "):
        raise Fail("%s: %r; --help's usage is %r" % (what, line, usage))
    rest = line[len(start):]
    if line != usage and not re.fullmatch(r"(?:\s*\[(?:[^\[\]]|\[[^\[\]]*\])+\])*\s*", rest):
        raise Fail("%s: %r has more than optional options after %r" % (what, line, start))
    args = help_arguments(sub)
    for opt, arg in re.findall(r"(?<![\w-])(--?[\w.-]+)(?: ((?:\[[A-Z]+\]:)?[A-Z]+))?", rest):
        if opt not in args:
            raise Fail("%s names %s, which ktlsctl %s --help does not list" % (what, opt, sub))
        if opt.startswith("--") and arg != (args[opt] or ""):
            raise Fail("%s: %s %s; --help: %s %s" % (what, opt, arg, opt, args[opt] or ""))


@suite.case("synopsis: each subcommand's line in the man page is its usage, with options it has")
def _synopsis():
    text = "\n".join(man_sections("SH")["SYNOPSIS"])
    lines = {}
    for part in re.split(r"\n\.br\n", text):
        shown = " ".join(roff_text(l) for l in part.splitlines())
        m = re.match(r"ktlsctl (\w+)", shown)
        if m and m.group(1) in SUBCOMMANDS:
            lines[m.group(1)] = shown
    for sub in SUBCOMMANDS:
        if sub not in lines:
            raise Fail("the man page's SYNOPSIS has no line for %s" % sub)
        check_synopsis("man SYNOPSIS for %s" % sub, lines[sub], sub)


@suite.case("README: each subcommand's usage line is its usage, with options it has")
def _readme_usage():
    usage = readme().split("## Usage", 1)[1].split("\n#", 1)[0]
    lines = synopses("\n".join(l[4:] for l in usage.splitlines() if l.startswith("    ")))
    for sub in SUBCOMMANDS:
        if sub not in lines:
            raise Fail("README's Usage has no line for ktlsctl %s" % sub)
        check_synopsis("README's usage line for %s" % sub, lines[sub], sub)


# ------------------------------------------------------------ exit statuses

def err_h_statuses():
    with open(os.path.join(TOP, "core", "err.h"), encoding="utf-8") as f:
        return {int(n) for n in re.findall(r"^\s*KC_E_\w+ = (\d+),", f.read(), re.M)}


@suite.case("exit statuses: core/err.h, the man page's EXIT STATUS and README's table agree")
def _exit_statuses():
    codes = err_h_statuses() | {0, 130, 143}
    man = set()
    for tag in tags(man_sections("SH")["EXIT STATUS"]):
        man.update(int(n) for n in re.findall(r"\b(\d+)\b", tag))
    text = readme().split("### Exit statuses", 1)[1].split("\n#", 1)[0]
    table = set()
    for row in re.findall(r"^\| ([\d, ]+) \|", text, re.M):
        table.update(int(n) for n in re.findall(r"\d+", row))
    if man != codes:
        raise Fail("man EXIT STATUS lists %s; core/err.h (with 0, 130, 143) has %s"
                   % (sorted(man), sorted(codes)))
    if table != codes:
        raise Fail("README's exit status table lists %s; core/err.h (with 0, 130, 143) has %s"
                   % (sorted(table), sorted(codes)))


# --------------------------------------------------------- session commands

def session_help():
    """The session commands as /help lists them ("/save FILE"), asked in a
    pipe-mode session against a ktlsctl server."""
    cert, key = suite.certs.srv_ec
    srv, port = ktlsctl_listen("--cert", cert, "--key", key, "--echo", *CHANNEL_ARGS)
    try:
        cli = ktlsctl("connect", "127.0.0.1:%d" % port, "--insecure", "-q", "--commands",
                      *CHANNEL_ARGS, stdin=b"/help\n/quit\n")
        check_exit(cli, 0, 20, "ktlsctl connect --commands with /help")
    finally:
        srv.kill()
    listed = re.findall(r"^  (/\w+(?: \S+)?)  ", cli.stderr, re.M)
    if not listed:
        raise Fail("/help listed no commands\n%s" % cli.describe())
    return listed


@suite.case("session commands: /help, the man page's SESSION COMMANDS and README's table agree")
def _session_commands():
    want = set(session_help())
    man = {roff_text(t) for t in tags(man_sections("SH")["SESSION COMMANDS"])}
    table = set(re.findall(r"^\| `(/[^`]+)`", readme(), re.M))
    compare("man SESSION COMMANDS", man, want, "/help")
    compare("README's session command table", table, want, "/help")


if __name__ == "__main__":
    sys.exit(suite.main())
