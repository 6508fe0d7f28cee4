"""`deepshop completion bash|zsh|fish`: a shell completion script made from the command's own parser.

    source <(deepshop completion bash)                                        this shell only
    deepshop completion bash > ~/.local/share/bash-completion/completions/deepshop
    deepshop completion zsh > ~/.zfunc/_deepshop      (with fpath+=~/.zfunc before compinit)
    deepshop completion fish > ~/.config/fish/completions/deepshop.fish

The scripts complete the subcommands, each subcommand's options, the values of options with a
fixed set of choices, and file names for inputs and for options that take a file or folder.  They
are generated from the argparse parser every time, so a new option completes without anything
else to update.  Nothing is imported from other completion packages.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..core.errors import OptionError

SHELLS = ("bash", "zsh", "fish")
#: Option values that are files or folders, told by their metavar (FILE, DIR, IMAGE, ...) or dest.
_FILE_WORDS = re.compile(r"FILE|DIR|IMAGE|PHOTO|DRAWING|PAINTING|MODEL|SHEET|CONTENT")
_FILE_DESTS = {"out", "model", "content", "style", "sheet", "palette_from"}
#: Words safe to put into a script unquoted (choices are such words; anything else is left out).
_WORD = re.compile(r"^[A-Za-z0-9_.:,+@%/=-]+$")


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "completion", help="print a shell completion script (bash, zsh or fish)",
        description="Print the completion script of the deepshop command for a shell.  Bash: "
                    "`source <(deepshop completion bash)`, or save it as "
                    "~/.local/share/bash-completion/completions/deepshop.  Zsh: save it as _deepshop in a folder of "
                    "$fpath.  Fish: save it as ~/.config/fish/completions/deepshop.fish.")
    p.add_argument("shell", choices=SHELLS, help="the shell to write the script for")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    root = getattr(args, "root_parser", None)
    if root is None:
        raise OptionError("completion: the command's parser is not known (run it as `deepshop completion SHELL`)")
    sys.stdout.write(script(args.shell, root))
    return 0


@dataclass
class Option:
    flags: List[str]              # e.g. ["-o", "--out"]
    help: str
    takes_value: bool
    choices: Optional[List[str]]  # fixed values, else None
    is_file: bool                 # its value is a file or folder name
    repeatable: bool


@dataclass
class Command:
    name: str
    help: str
    options: List[Option]
    positional_files: bool        # takes positional arguments (files)
    positional_choices: Optional[List[str]]


def describe(root: argparse.ArgumentParser) -> Tuple[List[Option], List[Command]]:
    """The root parser's own options and its subcommands with theirs, from argparse's actions."""
    commands = []
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, parser in action.choices.items():
                options, files, choices = _options(parser)
                commands.append(Command(name, _short(helps.get(name, "")), options, files, choices))
    return _options(root)[0], commands


def _options(parser: argparse.ArgumentParser):
    options, positional_files, positional_choices = [], False, None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings:
            if action.choices is not None:
                positional_choices = _words(action.choices)
            else:
                positional_files = True
            continue
        if action.help == argparse.SUPPRESS:
            continue
        takes_value = action.nargs != 0
        choices = _words(action.choices) if (takes_value and action.choices is not None) else None
        metavar = action.metavar if isinstance(action.metavar, str) else ""
        is_file = takes_value and choices is None and (bool(_FILE_WORDS.search(metavar)) or action.dest in _FILE_DESTS)
        options.append(Option(list(action.option_strings), _short(action.help or ""), takes_value, choices, is_file,
                              isinstance(action, argparse._AppendAction)))
    return options, positional_files, positional_choices


def _words(choices) -> List[str]:
    return [str(c) for c in choices if _WORD.match(str(c))]


def _short(text: str) -> str:
    """A help text's first clause, on one line, at most 70 characters (argparse's %(default)s left as is)."""
    text = " ".join(str(text).split())
    text = re.split(r";\s|\.\s(?=[A-Z])|\s\(", text, maxsplit=1)[0].rstrip(".;")
    return text if len(text) <= 70 else text[:67].rstrip() + "..."


def script(shell: str, root: argparse.ArgumentParser) -> str:
    if shell not in SHELLS:
        raise OptionError(f"completion: shell must be one of {', '.join(SHELLS)}, got {shell!r}")
    root_options, commands = describe(root)
    prog = root.prog
    return {"bash": _bash, "zsh": _zsh, "fish": _fish}[shell](prog, root_options, commands)


# ------------------------------------------------------------------ bash

def _bash(prog: str, root_options: Sequence[Option], commands: Sequence[Command]) -> str:
    fn = "_" + re.sub(r"\W", "_", prog)
    top = " ".join([c.name for c in commands] + [f for o in root_options for f in o.flags])
    lines = [f"# bash completion for {prog} (made by `{prog} completion bash`)",
             f"{fn}() {{",
             '    local cur prev cmd i',
             '    cur="${COMP_WORDS[COMP_CWORD]}"',
             '    prev="${COMP_WORDS[COMP_CWORD-1]}"',
             '    # --option=value: bash splits at "=", the option is the word before it',
             '    if [[ "$prev" == "=" && $COMP_CWORD -ge 2 ]]; then prev="${COMP_WORDS[COMP_CWORD-2]}"; fi',
             '    if [[ "$cur" == "=" ]]; then cur=""; fi',
             '    cmd=""',
             '    for ((i = 1; i < COMP_CWORD; i++)); do',
             '        case "${COMP_WORDS[i]}" in',
             '            -*|=) ;;',
             '            *) cmd="${COMP_WORDS[i]}"; break ;;',
             '        esac',
             '    done',
             '    if [[ -z "$cmd" ]]; then',
             f'        COMPREPLY=($(compgen -W "{top}" -- "$cur"))',
             '        return 0',
             '    fi',
             '    case "$cmd" in']
    for c in commands:
        lines.append(f"        {c.name})")
        value_cases = []
        for o in c.options:
            if not o.takes_value:
                continue
            pattern = "|".join(o.flags)
            if o.choices is not None:
                value_cases.append(f'                {pattern}) COMPREPLY=($(compgen -W "{" ".join(o.choices)}" -- "$cur")); '
                                   'return 0 ;;')
            else:   # a file (the default completion: file names) or a value to type
                value_cases.append(f"                {pattern}) return 0 ;;")
        if value_cases:
            lines += ['            case "$prev" in', *value_cases, "            esac"]
        flags = " ".join(f for o in c.options for f in o.flags)
        lines.append('            if [[ "$cur" == -* ]]; then')
        lines.append(f'                COMPREPLY=($(compgen -W "{flags}" -- "$cur"))')
        if c.positional_choices is not None:
            lines.append("            else")
            lines.append(f'                COMPREPLY=($(compgen -W "{" ".join(c.positional_choices)}" -- "$cur"))')
        lines.append("            fi")
        lines.append("            ;;")
    lines += ["    esac",
              "    return 0",
              "}",
              "# -o default: file names wherever the function offers nothing (inputs, --out, --model, ...)",
              f"complete -o default -F {fn} {prog}",
              ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ zsh

def _zsh_text(text: str) -> str:
    """Text inside a single-quoted _arguments spec's [help] or a _describe entry."""
    text = text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace(":", "\\:")
    return text.replace("'", "'\\''")


def _zsh_spec(o: Option) -> List[str]:
    specs = []
    for flag in o.flags:
        long = flag.startswith("--")
        head = "*" if o.repeatable else ("(" + " ".join(o.flags) + ")" if len(o.flags) > 1 else "")
        suffix = ("=" if long else "+") if o.takes_value else ""
        spec = f"{head}{flag}{suffix}[{_zsh_text(o.help)}]"
        if o.takes_value:
            name = max(o.flags, key=len).lstrip("-").replace("-", " ")
            if o.choices is not None:
                spec += f":{name}:({' '.join(o.choices)})"
            elif o.is_file:
                spec += f":{name}:_files"
            else:
                spec += f":{name}: "
        specs.append(f"'{spec}'")
    return specs


def _zsh(prog: str, root_options: Sequence[Option], commands: Sequence[Command]) -> str:
    fn = "_" + re.sub(r"\W", "_", prog)
    lines = [f"#compdef {prog}",
             f"# zsh completion for {prog} (made by `{prog} completion zsh`): save as _{prog} in a folder of $fpath",
             f"{fn}() {{",
             "    local curcontext=\"$curcontext\" state line",
             "    typeset -A opt_args",
             "    local -a commands",
             "    commands=("]
    lines += [f"        '{_zsh_text(c.name)}:{_zsh_text(c.help)}'" for c in commands]
    lines += ["    )",
              "    _arguments -C \\"]
    lines += [f"        {s} \\" for o in root_options for s in _zsh_spec(o)]
    lines += ["        '1:command:->command' \\",
              "        '*::argument:->argument'",
              "    case $state in",
              "        command) _describe -t commands 'deepshop command' commands ;;",
              "        argument)",
              "            case $words[1] in"]
    for c in commands:
        specs = [s for o in c.options for s in _zsh_spec(o)]
        if c.positional_choices is not None:
            specs.append(f"'1:{c.name}:({' '.join(c.positional_choices)})'")
        elif c.positional_files:
            specs.append("'*:file:_files'")
        lines.append(f"                {c.name})")
        lines.append("                    _arguments \\")
        lines += [f"                        {s} \\" for s in specs[:-1]]
        lines.append(f"                        {specs[-1]}" if specs else "                        ''")
        lines.append("                    ;;")
    lines += ["            esac",
              "            ;;",
              "    esac",
              "}",
              f'if [[ "$funcstack[1]" == "{fn}" ]]; then {fn} "$@"; else compdef {fn} {prog}; fi',
              ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ fish

def _fish_text(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(prog: str, root_options: Sequence[Option], commands: Sequence[Command]) -> str:
    names = " ".join(c.name for c in commands)
    lines = [f"# fish completion for {prog} (made by `{prog} completion fish`)",
             f"complete -c {prog} -f"]
    for c in commands:
        lines.append(f"complete -c {prog} -n 'not __fish_seen_subcommand_from {names}' -a {c.name} "
                     f"-d {_fish_text(c.help)}")
    for o in root_options:
        lines.append(f"complete -c {prog} -n 'not __fish_seen_subcommand_from {names}' {_fish_flags(o)}")
    for c in commands:
        when = f"-n '__fish_seen_subcommand_from {c.name}'"
        for o in c.options:
            lines.append(f"complete -c {prog} {when} {_fish_flags(o)}")
        if c.positional_choices is not None:
            lines.append(f"complete -c {prog} {when} -a {_fish_text(' '.join(c.positional_choices))}")
        elif c.positional_files:
            lines.append(f"complete -c {prog} {when} -F")
    return "\n".join(lines) + "\n"


def _fish_flags(o: Option) -> str:
    parts = []
    for flag in o.flags:
        if flag.startswith("--"):
            parts.append(f"-l {flag[2:]}")
        elif len(flag) == 2:
            parts.append(f"-s {flag[1]}")
        else:
            parts.append(f"-o {flag[1:]}")
    if o.takes_value:
        if o.choices is not None:
            parts.append(f"-x -a {_fish_text(' '.join(o.choices))}")
        elif o.is_file:
            parts.append("-r -F")
        else:
            parts.append("-x")
    parts.append(f"-d {_fish_text(o.help)}")
    return " ".join(parts)
