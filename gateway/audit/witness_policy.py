"""Which checkpoints a verifier accepts: C2SP ``tlog-policy`` files, and the quorum they define.

    log <vkey> [<url>]
    witness <name> <vkey> [<url>]
    group <name> <threshold|all|any> <member> <member>…
    quorum <name|none>

A checkpoint is accepted when one of the listed logs signed it and the quorum is satisfied by the
witnesses' valid cosignatures on it.  The quorum is a tree of small rules with one ``satisfied_by``
method each (a witness; a group of k of n members); ``quorum none`` must be written out — a policy
with no quorum line is refused, never read as "no witnesses needed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.checkpoint import AnyOfVerifiers, Checkpoint, NoteVerifier, split_note
from gateway.policy import Refusal
from gateway.witness.cosignature import CosignatureVerifier

CODE = "policy-invalid"
QUORUM_CODE = "quorum-not-met"
_NAME = re.compile(r"[A-Za-z0-9_.\-/]+")


class Rule(Protocol):
    @property
    def name(self) -> str: ...

    def satisfied_by(self, cosigners: frozenset[str]) -> bool: ...


@dataclass(frozen=True)
class Witnessed:
    """One witness's cosignature."""

    name: str

    def satisfied_by(self, cosigners: frozenset[str]) -> bool:
        return self.name in cosigners


@dataclass(frozen=True)
class Group:
    """At least ``threshold`` of ``members`` satisfied."""

    name: str
    threshold: int
    members: tuple[Rule, ...]

    def __post_init__(self) -> None:
        if not self.members or not 1 <= self.threshold <= len(self.members):
            raise ValueError("a group needs members and a threshold between 1 and their number")

    def satisfied_by(self, cosigners: frozenset[str]) -> bool:
        return sum(member.satisfied_by(cosigners) for member in self.members) >= self.threshold


@dataclass(frozen=True)
class NoWitnesses:
    """``quorum none``: said explicitly, for a deployment that has no witnesses yet."""

    name: str = "none"

    def satisfied_by(self, cosigners: frozenset[str]) -> bool:
        return True


@dataclass(frozen=True)
class Accepted:
    checkpoint: Checkpoint
    cosigned_by: tuple[str, ...]  # policy names of the witnesses whose cosignatures verified


@dataclass(frozen=True)
class WitnessPolicy:
    logs: tuple[NoteVerifier, ...]
    witnesses: dict[str, CosignatureVerifier]
    quorum: Rule

    @classmethod
    def parse(cls, text: str) -> WitnessPolicy:
        logs: list[NoteVerifier] = []
        witnesses: dict[str, CosignatureVerifier] = {}
        rules: dict[str, Rule] = {}
        quorum: Rule | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0] if raw.lstrip().startswith("#") else raw
            fields = line.split()
            if not fields:
                continue
            where = f"line {number}"
            keyword, args = fields[0], fields[1:]
            try:
                if keyword == "log" and len(args) in (1, 2):
                    logs.append(NoteVerifier.parse(args[0]))
                elif keyword == "witness" and len(args) in (2, 3):
                    name = _new_name(args[0], rules, where)
                    verifier = CosignatureVerifier.parse(args[1])
                    if any(v.public_key == verifier.public_key for v in witnesses.values()):
                        raise Refusal(CODE, f"{where}: this witness key is listed twice")
                    if any(_raw(log.public_key) == _raw(verifier.public_key) for log in logs):
                        raise Refusal(CODE, f"{where}: this is a log's key: a log cannot witness itself")
                    witnesses[name] = verifier
                    rules[name] = Witnessed(name)
                elif keyword == "group" and len(args) >= 3:
                    name = _new_name(args[0], rules, where)
                    members = tuple(_known(m, rules, where) for m in args[2:])
                    _disjoint(members, where)
                    rules[name] = Group(name, _threshold(args[1], len(members), where), members)
                elif keyword == "quorum" and len(args) == 1:
                    if quorum is not None:
                        raise Refusal(CODE, f"{where}: a policy has exactly one quorum line")
                    quorum = NoWitnesses() if args[0] == "none" else _known(args[0], rules, where)
                else:
                    raise Refusal(CODE, f"{where}: expected log, witness, group or quorum with its fields")
            except ValueError as exc:
                raise Refusal(CODE, f"{where}: {exc}") from None
            except Refusal as refusal:  # a key that does not parse: say on which line
                if refusal.reason.startswith(where):
                    raise
                raise Refusal(CODE, f"{where}: {refusal.reason}") from None
        if quorum is None:
            raise Refusal(CODE, "the policy has no quorum line (write 'quorum none' to need no witnesses)")
        if not logs:
            raise Refusal(CODE, "the policy lists no log: add 'log <vkey>' (`gateway audit vkey`)")
        return cls(tuple(logs), witnesses, quorum)

    @classmethod
    def load(cls, path: Path) -> WitnessPolicy:
        try:
            return cls.parse(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise Refusal(CODE, f"cannot read the policy {path}: {exc.strerror}") from None

    @property
    def log_verifier(self) -> AnyOfVerifiers:
        return AnyOfVerifiers(self.logs)

    def open(self, note: str) -> Checkpoint:
        """The checkpoint of ``note`` signed by any log of the policy (each by the origin its key names)."""
        failure: Refusal | None = None
        for log in self.logs:
            try:
                return Checkpoint.parse(log.verify(note), log.name)
            except Refusal as refusal:
                failure = failure or refusal
        assert failure is not None
        raise failure

    def cosigners(self, note: str) -> tuple[str, ...]:
        """The policy names of the witnesses with a valid cosignature in ``note``; a bad one is refused.

        Every line is checked (a list, not ``any``): a corrupt line by a known witness refuses the
        note wherever it stands, so the verdict never depends on the lines' order."""
        body, lines = split_note(note)
        found = []
        for name, verifier in self.witnesses.items():
            if [stamp for line in lines if (stamp := verifier.timestamp(body, line)) is not None]:
                found.append(name)
        return tuple(found)

    def accept(self, note: str) -> Accepted:
        """The checkpoint of ``note`` when a listed log signed it and the quorum cosigned it."""
        checkpoint = self.open(note)
        cosigned = self.cosigners(note)
        if not self.quorum.satisfied_by(frozenset(cosigned)):
            signed = ", ".join(cosigned) or "no witness"
            raise Refusal(
                QUORUM_CODE,
                f"the checkpoint of size {checkpoint.size} is cosigned by {signed}, which does not meet the "
                f"policy's quorum {self.quorum.name!r}",
            )
        return Accepted(checkpoint, cosigned)


def _new_name(name: str, rules: dict[str, Rule], where: str) -> str:
    if not _NAME.fullmatch(name) or name == "none":
        raise Refusal(CODE, f"{where}: {name!r} cannot name a witness or group")
    if name in rules:
        raise Refusal(CODE, f"{where}: {name!r} is defined twice")
    return name


def _witnesses_in(rule: Rule) -> frozenset[str]:
    if isinstance(rule, Group):
        return frozenset().union(*(_witnesses_in(m) for m in rule.members))
    return frozenset({rule.name})


def _disjoint(members: tuple[Rule, ...], where: str) -> None:
    """Each witness counts once in a group: ``group g 2 w1 w1``, or a member group that also holds
    another member, would let fewer witnesses than the threshold says meet it."""
    seen: set[str] = set()
    for member in members:
        inside = _witnesses_in(member)
        if inside & seen:
            raise Refusal(CODE, f"{where}: {', '.join(sorted(inside & seen))} would count twice in this group")
        seen |= inside


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _known(name: str, rules: dict[str, Rule], where: str) -> Rule:
    if name not in rules:
        raise Refusal(CODE, f"{where}: {name!r} is not a witness or group defined on an earlier line")
    return rules[name]


def _threshold(value: str, members: int, where: str) -> int:
    if value == "all":
        return members
    if value == "any":
        return 1
    if not value.isdigit() or not 1 <= int(value) <= members:
        raise Refusal(CODE, f"{where}: a group's threshold is all, any or a number from 1 to its {members} members")
    return int(value)
