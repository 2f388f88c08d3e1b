"""callrelay's TwiML read as Twilio reads it, so that the simulator plays what it says."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from xml.etree import ElementTree

NOUNS = ("Number", "Client", "Sip", "Conference")


@dataclass(frozen=True)
class Dialled:
    """A `<Dial>`: whom Twilio calls, and where it reports the child leg's progress."""

    noun: str  # one of NOUNS
    target: str  # the noun's text: a number, an identity, a SIP URI or a conference name
    status_callback: str | None  # as written, with its (unsigned) fragment
    events: frozenset[str]  # statusCallbackEvent
    caller_id: str | None

    @property
    def to(self) -> str:
        """The child leg's `To`, as Twilio's callbacks carry it."""
        return f"client:{self.target}" if self.noun == "Client" else self.target

    @property
    def callback_path(self) -> str | None:
        """Where the child's callbacks go, relative to the public URL (path and query)."""
        if self.status_callback is None:
            return None
        url = urlsplit(self.status_callback)
        return url.path + (f"?{url.query}" if url.query else "")

    @property
    def callback_base(self) -> str | None:
        """The origin Twilio would post the child's callbacks to."""
        if self.status_callback is None:
            return None
        url = urlsplit(self.status_callback)
        return f"{url.scheme}://{url.netloc}"

    def describe(self) -> str:
        """One line for the simulator's output."""
        return f"dials <{self.noun}>{self.target}</{self.noun}>"


@dataclass(frozen=True)
class NotDialled:
    """TwiML that connects the caller to nothing: what it says, and whether it hangs up."""

    said: str
    hangs_up: bool

    def describe(self) -> str:
        """One line for the simulator's output."""
        said = f"says \"{self.said}\"" if self.said else "says nothing"
        return f"dials nothing: {said}" + (" and hangs up" if self.hangs_up else "")


def read_twiml(text: str) -> Dialled | NotDialled:
    """What a Voice URL answer asks Twilio to do; ValueError when it is not TwiML."""
    try:
        # The answer of the callrelay the simulator was pointed at; expat expands no external
        # entity.
        root = ElementTree.fromstring(text)  # noqa: S314
    except ElementTree.ParseError as exc:
        raise ValueError(f"the answer is not XML ({exc})") from None
    if root.tag != "Response":
        raise ValueError(f"the answer is not TwiML: its root is <{root.tag}>")
    dial = root.find("Dial")
    if dial is None:
        said = " ".join(" ".join(say.itertext()).strip() for say in root.iter("Say"))
        return NotDialled(said.strip(), root.find("Hangup") is not None)
    for noun in dial:
        if noun.tag in NOUNS:
            target = noun.findtext("Identity") if noun.tag == "Client" else None
            return Dialled(noun.tag, (target or noun.text or "").strip(),
                           noun.get("statusCallback"),
                           frozenset((noun.get("statusCallbackEvent") or "").split()),
                           dial.get("callerId"))
    # <Dial>+15551234567</Dial>: a number, with no callbacks of its own.
    return Dialled("Number", (dial.text or "").strip(), None, frozenset(), dial.get("callerId"))
