"""RFC behaviour through the handlers alone: no socket, no event loop.

Each test is a dialogue: a client "sends" lines (``net.send``) and the test
reads, from the outbox, exactly the lines each client would receive
(``net.read``). The clocks are fakes, so WHOIS idle times and ghost nicks
are exact.
"""

from __future__ import annotations

from typing import Any

from futon.config.models import IrcServerSection
from futon.protocol.irc_lines import RawLine
from futon.transports.irc.handlers import IrcHandlers
from futon.transports.irc.options import IrcHome, IrcLimits
from futon.transports.irc.state import Client
from futon.transports.irc.virtual import VirtualUsers

SERVER = "irc.test"
START = 1_700_000_000.0  # wall clock, epoch seconds


class Net:
    """One server's handlers, fake clocks and a way to talk to them."""

    def __init__(self, reserved: tuple[str, ...] = (), **settings: Any) -> None:
        self.now = 100.0  # monotonic
        self.wall = START
        self.handlers = IrcHandlers(
            IrcServerSection(name=SERVER, network="TestNet", **settings),
            limits=IrcLimits(),
            home=IrcHome("futon", ("#futon",)),
            reserved=lambda nick: nick.lower() in reserved,
            clock=lambda: self.now,
            wall=lambda: self.wall,
        )
        self.state = self.handlers.state
        self.out = self.handlers.out

    def connect(self, ip: str = "127.0.0.1") -> Client:
        return Client(nick="", user="", host=ip, realname="", ip=ip)

    def send(self, client: Client, *lines: str) -> None:
        for line in lines:
            self.handlers.handle_line(client, RawLine(line.encode()))

    def read(self, client: Client) -> list[str]:
        """The lines ``client`` would receive since the last read."""
        return self.out.lines_for(client)

    def hooks(self) -> list[tuple[str, tuple[object, ...]]]:
        hooks = [(name, args) for name, args, _ in self.out.hooks]
        self.out.hooks.clear()
        return hooks

    def register(self, nick: str) -> Client:
        client = self.connect()
        self.send(client, f"NICK {nick}", f"USER {nick} 0 * :{nick.title()} Test")
        assert client.registered
        self.read(client)
        return client

    def joined(self, nick: str, *channels: str) -> Client:
        client = self.register(nick)
        for channel in channels:
            self.send(client, f"JOIN {channel}")
        self.read(client)
        return client


def prefix(nick: str) -> str:
    return f"{nick}!~{nick}@127.0.0.1"


# ------------------------------------------------------------ registration


def test_nick_then_user_registers_with_welcome_isupport_and_motd() -> None:
    net = Net()
    alice = net.connect()
    net.send(alice, "NICK alice")
    assert net.read(alice) == []  # nothing until USER
    net.send(alice, "USER alice 0 * :Alice Liddell")
    lines = net.read(alice)
    assert lines[0] == f":{SERVER} 001 alice :Welcome to the TestNet IRC Network {prefix('alice')}"
    assert [line.split()[1] for line in lines[:4]] == ["001", "002", "003", "004"]
    assert any("CASEMAPPING=rfc1459" in line for line in lines)
    assert lines[-1] == f":{SERVER} 376 alice :End of /MOTD command."
    motd = [line for line in lines if " 372 " in line]
    assert any("/join #futon" in line for line in motd)
    assert any("'futon: help'" in line for line in motd)


def test_user_then_nick_registers_too_and_caps_hold_registration() -> None:
    net = Net()
    bob = net.connect()
    net.send(bob, "USER bob 0 * :Bob", "CAP LS 302")
    assert net.read(bob) == [f":{SERVER} CAP * LS :message-tags server-time"]
    net.send(bob, "NICK bob", "CAP REQ :server-time")
    assert net.read(bob) == [f":{SERVER} CAP bob ACK :server-time"]
    assert not bob.registered  # CAP negotiation holds it
    net.send(bob, "CAP END")
    assert bob.registered and net.read(bob)[0].startswith(f":{SERVER} 001 bob ")
    assert bob.caps == {"server-time"}


def test_commands_before_registration_and_a_wrong_password() -> None:
    net = Net(password="s3cret")
    early = net.connect()
    net.send(early, "JOIN #room", "FOOBAR")
    assert net.read(early) == [f":{SERVER} 451 * :You have not registered"] * 2
    net.send(early, "PASS wrong", "NICK eve", "USER eve 0 * :Eve")
    assert net.read(early) == [
        f":{SERVER} 464 eve :Password incorrect",
        "ERROR :Closing Link: 127.0.0.1 (Bad password)",
        "<hang up>",
    ]
    assert net.state.holder("eve") is None  # the nick is free again


# ------------------------------------------------------------ nicks


def test_nick_collision_is_433_under_rfc1459_case_mapping() -> None:
    net = Net()
    net.register("al[ice]")
    bob = net.connect()
    net.send(bob, "NICK AL{ICE}")  # {} are the lower case of []
    assert net.read(bob) == [f":{SERVER} 433 * AL{{ICE}} :Nickname is already in use"]
    net.send(bob, "NICK bob", "USER bob 0 * :Bob")
    net.read(bob)
    net.send(bob, "NICK Al[Ice]")
    assert net.read(bob) == [f":{SERVER} 433 bob Al[Ice] :Nickname is already in use"]


def test_reserved_nicks_are_refused_and_nick_changes_reach_channel_peers() -> None:
    net = Net(reserved=("claude-1",))
    alice = net.joined("alice", "#room")
    bob = net.joined("bob", "#room")
    net.read(alice)
    net.hooks()
    net.send(bob, "NICK Claude-1")
    assert net.read(bob) == [f":{SERVER} 433 bob Claude-1 :Nickname is reserved for an agent"]
    net.send(bob, "NICK robert")
    assert net.read(bob) == [f":{prefix('bob')} NICK :robert"]
    assert net.read(alice) == [f":{prefix('bob')} NICK :robert"]
    assert net.hooks() == [("on_nick", ("bob", "robert"))]
    assert net.state.holder("bob") is None and net.state.holder("ROBERT") is bob


def test_a_ghost_nick_is_reclaimed_after_its_ping_went_unanswered() -> None:
    net = Net(ping_interval_s=60)
    ghost = net.register("alice")
    ghost.ping_sent_at = net.now  # the keepalive PINGed it
    fresh = net.connect()
    net.now += 59
    net.send(fresh, "NICK alice")
    assert net.read(fresh) == [f":{SERVER} 433 * alice :Nickname is already in use"]
    net.now += 1
    net.send(fresh, "NICK alice")
    assert net.read(ghost) == [
        "ERROR :Closing Link: 127.0.0.1 (Ping timeout: nick reclaimed)",
        "<hang up>",
    ]
    assert net.state.holder("alice") is fresh


# ------------------------------------------------------------ channels


def test_join_part_and_privmsg_between_two_clients() -> None:
    net = Net()
    alice = net.register("alice")
    net.send(alice, "JOIN #room")
    assert net.read(alice) == [
        f":{prefix('alice')} JOIN #room",
        f":{SERVER} 353 alice = #room :@alice",
        f":{SERVER} 366 alice #room :End of /NAMES list",
    ]
    bob = net.register("bob")
    net.send(bob, "JOIN #ROOM")
    assert net.read(bob)[:2] == [
        f":{prefix('bob')} JOIN #room",  # the name it was created with
        f":{SERVER} 353 bob = #room :@alice bob",
    ]
    assert net.read(alice) == [f":{prefix('bob')} JOIN #room"]
    net.send(bob, "PRIVMSG #room :hi alice", "PRIVMSG #nowhere :hello?")
    assert net.read(alice) == [f":{prefix('bob')} PRIVMSG #room :hi alice"]
    assert net.read(bob) == [f":{SERVER} 401 bob #nowhere :No such nick/channel"]
    net.send(bob, "PART #room :bye")
    assert net.read(alice) == net.read(bob) == [f":{prefix('bob')} PART #room :bye"]
    net.send(bob, "PRIVMSG #room :still here?")
    assert net.read(bob) == [f":{SERVER} 404 bob #room :Cannot send to channel"]  # +n
    assert net.read(alice) == []
    assert net.hooks() == [
        ("on_join", ("alice", "#room")),
        ("on_join", ("bob", "#room")),
        ("on_message", ("bob", "#room", "hi alice")),
        ("on_part", ("bob", "#room", "bye")),
    ]


def test_topic_query_set_and_the_t_mode() -> None:
    net = Net()
    alice = net.joined("alice", "#room")
    bob = net.joined("bob", "#room")
    net.read(alice)
    net.send(bob, "TOPIC #room")
    assert net.read(bob) == [f":{SERVER} 331 bob #room :No topic is set"]
    net.send(bob, "TOPIC #room :bob was here")  # -t: anyone in the channel
    assert net.read(alice) == net.read(bob) == [f":{prefix('bob')} TOPIC #room :bob was here"]
    net.send(alice, "MODE #room +t")
    assert net.read(alice) == net.read(bob) == [f":{prefix('alice')} MODE #room +t"]
    net.send(bob, "TOPIC #room :again")
    assert net.read(bob) == [f":{SERVER} 482 bob #room :You're not channel operator"]
    net.wall += 5
    net.send(alice, "TOPIC #room :plans")
    net.read(alice)
    net.send(bob, "TOPIC #room")
    assert net.read(bob)[1:] == [
        f":{SERVER} 332 bob #room :plans",
        f":{SERVER} 333 bob #room {prefix('alice')} :{int(START) + 5}",
    ]


def test_the_daemons_channel_starts_with_its_topic() -> None:
    net = Net()
    virtual = VirtualUsers(net.handlers)
    virtual.add("futon")
    virtual.join("futon", "#futon")
    alice = net.register("alice")
    net.send(alice, "JOIN #Futon")
    lines = net.read(alice)
    assert lines[1] == f":{SERVER} 332 alice #futon :futon — humans and agents; say 'futon: help'"
    assert lines[2] == f":{SERVER} 333 alice #futon futon :{int(START)}"


def test_mode_ops_and_kick() -> None:
    net = Net()
    alice = net.joined("alice", "#room")
    bob = net.joined("bob", "#room")
    carol = net.joined("carol", "#room")
    net.read(alice), net.read(bob)
    net.send(bob, "KICK #room carol")
    assert net.read(bob) == [f":{SERVER} 482 bob #room :You're not channel operator"]
    net.send(alice, "MODE #room +o bob")
    assert net.read(carol) == [f":{prefix('alice')} MODE #room +o bob"]
    net.read(alice), net.read(bob)
    net.hooks()
    net.send(bob, "KICK #room carol :enough")
    kick = f":{prefix('bob')} KICK #room carol :enough"
    assert net.read(alice) == net.read(bob) == net.read(carol) == [kick]
    assert [u.nick for u in net.state.channel("#room").members] == ["alice", "bob"]
    assert net.hooks() == [("on_part", ("carol", "#room", "kicked by bob: enough"))]
    net.send(alice, "MODE #room", "MODE alice +i", "MODE bob +i")
    assert net.read(alice) == [
        f":{SERVER} 324 alice #room :+n",
        f":{SERVER} 329 alice #room :{net.state.channel('#room').created}",
        ":alice MODE alice :+i",
        f":{SERVER} 502 alice :Can't change mode for other users",
    ]


# ------------------------------------------------------------ queries


def test_who_and_whois() -> None:
    net = Net()
    alice = net.joined("alice", "#room")
    net.joined("bob", "#room")
    net.read(alice)
    net.send(alice, "AWAY :lunch")
    net.read(alice)
    net.wall += 42
    net.send(alice, "WHO #room")
    assert net.read(alice) == [
        f":{SERVER} 352 alice #room ~alice 127.0.0.1 {SERVER} alice G@ :0 Alice Test",
        f":{SERVER} 352 alice #room ~bob 127.0.0.1 {SERVER} bob H :0 Bob Test",
        f":{SERVER} 315 alice #room :End of /WHO list",
    ]
    bob = net.state.lookup("bob")
    assert bob is not None
    net.send(alice, "WHOIS BOB")
    assert net.read(alice) == [
        f":{SERVER} 311 alice bob ~bob 127.0.0.1 * :Bob Test",
        f":{SERVER} 319 alice bob :#room",
        f":{SERVER} 312 alice bob {SERVER} :TestNet (futon)",
        f":{SERVER} 317 alice bob 42 {int(START)} :seconds idle, signon time",
        f":{SERVER} 318 alice BOB :End of /WHOIS list",
    ]
    net.send(alice, "WHOIS nobody")
    assert net.read(alice)[0] == f":{SERVER} 401 alice nobody :No such nick/channel"


def test_quit_frees_the_nick_and_tells_the_channel() -> None:
    net = Net()
    alice = net.joined("alice", "#room")
    bob = net.joined("bob", "#room")
    net.read(alice)
    net.hooks()
    net.send(bob, "QUIT :see you")
    assert net.read(bob) == ["ERROR :Closing Link: 127.0.0.1 (Quit: see you)", "<hang up>"]
    assert net.read(alice) == [f":{prefix('bob')} QUIT :Quit: see you"]
    assert net.hooks() == [("on_quit", ("bob", "Quit: see you"))]
    assert net.state.holder("bob") is None
    net.send(bob, "PRIVMSG #room :ghost")  # a closing client's lines reach nobody
    assert net.read(alice) == net.read(bob) == []
