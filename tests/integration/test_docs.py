#!/usr/bin/env python3
"""The documentation says what the binary does: every option that a
subcommand's --help lists is described in the manual page's OPTIONS section
for that subcommand and offered by the bash, zsh and fish completions, and
none of them offers an option the binary does not have.  The subcommands,
the exit statuses (core/err.h) and the session commands are checked the same
way across --help, the manual page and the README.

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
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ktlsctl_test.settings import KTLSCTL  # noqa: E402
from ktlsctl_test.runner import Suite  # noqa: E402
from ktlsctl_test.verdicts import Fail  # noqa: E402

suite = Suite("test_docs", case_timeout=60)
TOP = os.environ.get("TOP_SRCDIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAN = os.path.join(TOP, "man", "ktlsctl.1")
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


def run(argv, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       stdin=subprocess.DEVNULL, **kw)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def help_text(sub):
    rc, out, err = run([KTLSCTL] + ([sub] if sub else []) + ["--help"])
    if rc != 0:
        raise Fail("ktlsctl %s --help exited %d: %s" % (sub, rc, err))
    return out


def help_options(sub):
    """The options an option line of --help starts with ("  -k, --keep-open")."""
    opts = set()
    for line in help_text(sub).splitlines():
        m = re.match(r"^  (?:(-\w), )?\s*(--[a-z0-9.-]+)", line)
        if m:
            opts.update(o for o in m.groups() if o)
    if not opts:
        raise Fail("ktlsctl %s --help lists no options" % sub)
    return opts


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


def man_options(sub):
    sections = man_sections("SS")
    opts = set()
    for title in MAN_SECTIONS[sub] + ([] if sub == "" else ["General"]):
        if title not in sections:
            raise Fail("the manual page has no section %r" % title)
        for tag in tags(sections[title]):
            opts.update(OPTION.findall(tag))
    if sub:
        opts -= {"-V", "--version"}   # General's, for the top level only
    return opts


def compare(what, have, want):
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        raise Fail("%s: %s%s%s" % (what,
                                   "lacks %s" % " ".join(missing) if missing else "",
                                   "; " if missing and extra else "",
                                   "offers %s, which --help does not list" % " ".join(extra) if extra else ""))


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


def top_commands():
    out = help_text("")
    block = out.split("Commands:", 1)[1].split("Options:", 1)[0]
    return [l.split()[0] for l in block.splitlines() if l.strip()]


for _sub in SUBCOMMANDS + [""]:
    _name = _sub or "(top level)"

    def _man(sub=_sub, name=_name):
        compare("man page OPTIONS for %s" % name, man_options(sub), help_options(sub))
    suite.add("man page: every %s option of --help is described, and no other" % _name, _man)

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


@suite.case("subcommands: --help, the man page, README and all three completions name the same")
def _subcommands():
    want = top_commands()
    if want != SUBCOMMANDS:
        raise Fail("ktlsctl --help lists %s; this test knows %s: update one of them" % (want, SUBCOMMANDS))
    sub_tags = " ".join(tags(man_sections("SH")["SUBCOMMANDS"]))
    synopsis = " ".join(man_sections("SH")["SYNOPSIS"])
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for c in want:
        if not re.search(r"\.B[IR]? %s\b" % c, sub_tags):
            raise Fail("the man page's SUBCOMMANDS section has no item for %s" % c)
        if "ktlsctl %s" % c not in synopsis:
            raise Fail("the man page's SYNOPSIS has no line for %s" % c)
        if not re.search(r"^    ktlsctl %s\b" % c, readme, re.M):
            raise Fail("README's Usage has no line for ktlsctl %s" % c)
    compare("bash completion of 'ktlsctl '", bash_completion([""]), set(want))
    compare("fish completion of 'ktlsctl '",
            {w for w in fish_completion("ktlsctl ") if not w.startswith("-")}, set(want))
    zsh = {l[4:].split(":")[0] for l in zsh_specs("command", []) if l.startswith("cmd ")}
    compare("zsh completion's commands", zsh, set(want))


@suite.case("synopsis: each subcommand's line in the man page uses only options it has")
def _synopsis():
    text = "\n".join(man_sections("SH")["SYNOPSIS"])
    for part in re.split(r"\n\.br\n", text):
        m = re.match(r"\.B ktlsctl (\w+)", part)
        if not m:
            continue
        stray = set(OPTION.findall(part)) - help_options(m.group(1))
        if stray:
            raise Fail("SYNOPSIS for %s names %s, which its --help does not list"
                       % (m.group(1), " ".join(sorted(stray))))


def err_h_statuses():
    with open(os.path.join(TOP, "core", "err.h"), encoding="utf-8") as f:
        return {int(n) for n in re.findall(r"^\s*KC_E_\w+ = (\d+),", f.read(), re.M)}


@suite.case("exit statuses: core/err.h, the man page's EXIT STATUS and README's table agree")
def _exit_statuses():
    codes = err_h_statuses() | {0, 130, 143}
    man = set()
    for tag in tags(man_sections("SH")["EXIT STATUS"]):
        man.update(int(n) for n in re.findall(r"\b(\d+)\b", tag))
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        readme = f.read().split("### Exit statuses", 1)[1].split("\n#", 1)[0]
    table = set()
    for row in re.findall(r"^\| ([\d, ]+) \|", readme, re.M):
        table.update(int(n) for n in re.findall(r"\d+", row))
    if man != codes:
        raise Fail("man EXIT STATUS lists %s; core/err.h (with 0, 130, 143) has %s"
                   % (sorted(man), sorted(codes)))
    if table != codes:
        raise Fail("README's exit status table lists %s; core/err.h (with 0, 130, 143) has %s"
                   % (sorted(table), sorted(codes)))


@suite.case("session commands: the man page's SESSION COMMANDS and README's table agree")
def _session_commands():
    man = {m.group(1) for m in (re.match(r"\.B[IR]? \"?(/\w+)", t)
                                for t in tags(man_sections("SH")["SESSION COMMANDS"])) if m}
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        readme = set(re.findall(r"^\| `(/\w+)", f.read(), re.M))
    if not man or man != readme:
        raise Fail("man SESSION COMMANDS has %s, README's table %s" % (sorted(man), sorted(readme)))


if __name__ == "__main__":
    sys.exit(suite.main())
