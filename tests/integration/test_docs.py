#!/usr/bin/env python3
"""The documentation says what the binary does.  The binary's own tables
(cli/opts.c, cli/commands.c) are the reference, read through what is made
from them: --help (names, short names, arguments), the "use a, b or c" of
an invalid value (an option's fixed values), and /help in a session.

Checked against them: the manual page's OPTIONS section for each
subcommand (option names, their arguments, their value lists), its
SUBCOMMANDS, SYNOPSIS and SESSION COMMANDS, README's usage lines and
session command table; the bash, zsh and fish completions offer exactly
the options and subcommands of --help.  The exit statuses (core/err.h)
are checked across the manual page and README the same way.

The completions are asked for real where the shell allows it: bash runs
_ktlsctl with COMP_WORDS set, fish answers `complete -C`; zsh runs the
completion function with _arguments and _describe replaced by functions that
print the specifications they are given (its real ones need a terminal)."""

import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True     # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import (  # noqa: E402
    CHANNEL_ARGS, KTLSCTL, Fail, Suite, check_exit, ktlsctl, ktlsctl_listen)

suite = Suite("test_docs", case_timeout=60)
TOP = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(TOP, "man", "ktlsctl.1")
README = os.path.join(TOP, "README.md")
COMPLETIONS = os.path.join(TOP, "completions")
SUBCOMMANDS = ["connect", "listen", "selftest", "stats", "keyupdate", "tickets"]
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9.-]*)")

# The manual page's OPTIONS subsections that describe each subcommand;
# -h/--help (General) applies to every one.
MAN_SECTIONS = {
    "": ["General"],
    "connect": ["Options for connect and listen", "Options for connect only"],
    "listen": ["Options for connect and listen", "Options for listen only"],
    "selftest": ["Options for selftest"],
    "stats": ["Options for stats"],
    "keyupdate": ["Options for keyupdate"],
    "tickets": ["Options for tickets"],
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
        m = re.match(r"^  (?:(-\w), )?\s*(--[a-z0-9.-]+)(?: ([A-Z]\S*))?(?:\s{2,}|$)", line)
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
    rc, out, err = run([KTLSCTL, sub, "%s=%s" % (opt, "NOT-A-VALUE")])
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

def need(shell):
    path = shutil.which(shell)
    if not path:
        raise Fail("%s is not installed (./bootstrap installs it): its completion cannot be checked"
                   % shell)
    return path


def bash_completion(words):
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ktlsctl; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    rc, out, err = run([need("bash"), "-c", script, "bash",
                        os.path.join(COMPLETIONS, "ktlsctl.bash"), "ktlsctl"] + words)
    if rc != 0 or err:
        raise Fail("bash completion of %r failed (%d): %s" % (words, rc, err))
    return {l for l in out.splitlines() if l}


def fish_completion(line):
    rc, out, err = run([need("fish"), "--no-config", "-c",
                        'source $argv[1]; complete -C $argv[2]',
                        os.path.join(COMPLETIONS, "ktlsctl.fish"), line])
    if rc != 0 or err:
        raise Fail("fish completion of %r failed (%d): %s" % (line, rc, err))
    return {l.split("\t")[0] for l in out.splitlines() if l}


ZSH_STUB = r'''
file=$1 ZSTATE=$2; shift 2
integer calls=0
_arguments() {
	(( calls++ ))
	local a
	for a in "$@"; do print -r -- "$calls $a"; done
	[[ $1 == -C ]] && { state=$ZSTATE; return 1 }
	return 0
}
_describe() { local a; for a in "${(@P)4}"; do print -r -- "cmd $a"; done }
words=("$@")
source $file
'''


def zsh_specs(state, words):
    rc, out, err = run([need("zsh"), "-f", "-c", ZSH_STUB, "zsh",
                        os.path.join(COMPLETIONS, "_ktlsctl"), state] + words)
    if err:
        raise Fail("zsh completion (%s %r) printed errors: %s" % (state, words, err))
    return out.splitlines()


def zsh_options(sub):
    """Options from the _arguments specifications for sub (call 2), or the
    top level's (call 1): '(-q --quiet)--quiet[...]', '*--cipher[...]:...'."""
    call = "2" if sub else "1"
    opts = set()
    for line in zsh_specs("args" if sub else "command", [sub] if sub else []):
        n, _, spec = line.partition(" ")
        if n != call:
            continue
        spec = re.sub(r"^\([^)]*\)", "", spec).lstrip("*")
        m = re.match(r"^(--?[A-Za-z0-9][A-Za-z0-9.-]*)(?=[\[:=+]|$)", spec)
        if m and spec not in ("-C", "-s"):
            opts.add(m.group(1))
    return opts


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
        compare("zsh completion for %s" % name, zsh_options(sub), help_options(sub))
    suite.add("zsh completion: %s offers exactly the options of --help" % _name, _zsh)


# ------------------------------------------------------------- subcommands

@suite.case("subcommands: --help, the man page, README and all three completions name the same")
def _subcommands():
    want = [name for name, _ in top_commands()]
    if want != SUBCOMMANDS:
        raise Fail("ktlsctl --help lists %s; this test knows %s: update one of them" % (want, SUBCOMMANDS))
    man = [roff_text(tag) for tag, _ in items(man_sections("SH")["SUBCOMMANDS"])]
    for name, synopsis in top_commands():
        if synopsis not in man:
            raise Fail("the man page's SUBCOMMANDS has no item %r, as ktlsctl --help lists it "
                       "(its items: %s)" % (synopsis, ", ".join(map(repr, man))))
    compare("bash completion of 'ktlsctl '", bash_completion([""]), set(want))
    compare("fish completion of 'ktlsctl '",
            {w for w in fish_completion("ktlsctl ") if not w.startswith("-")}, set(want))
    zsh = {l[4:].split(":")[0] for l in zsh_specs("command", []) if l.startswith("cmd ")}
    compare("zsh completion's commands", zsh, set(want))


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
    if line != usage and not re.fullmatch(r"(?:\s*\[[^\]]+\])*\s*", rest):
        raise Fail("%s: %r has more than optional options after %r" % (what, line, start))
    args = help_arguments(sub)
    for opt, arg in re.findall(r"(?<![\w-])(--?[\w.-]+)(?: ([A-Z]+))?", rest):
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
