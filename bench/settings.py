"""settings.py - the benchmark's settings, read from the environment.

`Settings.from_env()` reads every variable bench/README.md lists under
"Settings", with the same defaults and checks as before, and resolves
SCENARIOS (names or the old letters a-i) to scenario names.  A bad value is
a `SettingsError` with a message for the user.
"""

import os
import re

HOST = "127.0.0.1"  # every load goes here
READY_TIMEOUT = 10  # seconds for a server to accept connections
SERVER_NAMES = ("ours", "nginx", "mhd", "raw", "base")
# `base` (another build of c-examples/server, BASE_BIN: "before" in a
# before/after comparison) runs only when SERVERS names it.
DEFAULT_SERVERS = ("ours", "nginx", "mhd", "raw")
DEFAULT_PORTS = {"ours": 18080, "nginx": 18081, "mhd": 18082, "raw": 18083, "multi": 18084, "base": 18085}


class SettingsError(Exception):
    pass


def _whole(env, name, default):
    value = env.get(name, "") or str(default)
    if not re.fullmatch(r"[0-9]+", value):
        raise SettingsError("%s must be a whole number, got '%s'" % (name, value))
    return int(value)


def _seconds(env, name, default):
    """A whole number of seconds; a trailing "s" ("5s") is accepted."""
    value = env.get(name, "")
    if value.endswith("s"):
        env = dict(env, **{name: value[:-1]})
    return _whole(env, name, default)


class Settings:
    """Every knob of a run, as attributes named like the variables, in
    lower case (rounds, duration, ...); ports is {server: port}."""

    @classmethod
    def from_env(cls, env=None, scenario_aliases=None):
        env = dict(os.environ if env is None else env)
        s = cls()
        s.quick = env.get("QUICK", "0") or "0"
        if s.quick == "1":
            for name, value in (("ROUNDS", "1"), ("DURATION", "2"), ("WARMUP", "0")):
                env[name] = env.get(name) or value
        s.rounds = _whole(env, "ROUNDS", 5)
        s.duration = _seconds(env, "DURATION", 5)
        s.warmup = _seconds(env, "WARMUP", 1)
        s.ports = {name: _whole(env, "PORT_" + name.upper(), port)
                   for name, port in DEFAULT_PORTS.items()}
        s.conns = _whole(env, "CONNS", 64)
        s.pipeline = _whole(env, "PIPELINE", 16)
        s.big_conns = _whole(env, "BIG_CONNS", 16)
        s.close_conns = _whole(env, "CLOSE_CONNS", 64)
        s.idle_conns = _whole(env, "IDLE_CONNS", 10000)
        s.server_cpu = _whole(env, "SERVER_CPU", 1)
        s.client_cpu = _whole(env, "CLIENT_CPU", 0)
        s.i_duration = _whole(env, "I_DURATION", 3)
        s.workers = _whole(env, "WORKERS", 2)
        s.nofile = _whole(env, "NOFILE", 65536)
        s.foreign_limit = _whole(env, "FOREIGN_LIMIT", 10)
        if s.rounds < 1 or s.duration < 1:
            raise SettingsError("ROUNDS and DURATION must be >= 1")
        s.nice_text = env.get("NICE", "") or "-10"
        if not re.fullmatch(r"-?[0-9]+", s.nice_text):
            raise SettingsError("NICE must be a whole number, got '%s'" % s.nice_text)
        s.nice = int(s.nice_text)
        s.keep_tmp = (env.get("KEEP_TMP", "0") or "0") == "1"
        s.cc = env.get("CC", "") or "cc"
        # Word lists, split on white space as the shell did.
        s.ours_args = (env.get("OURS_ARGS") or "--max-connections 20000 --idle-timeout-ms 600000").split()
        s.servers_text = env.get("SERVERS") or " ".join(DEFAULT_SERVERS)
        s.base_bin = env.get("BASE_BIN", "")
        s.servers = s.servers_text.split()
        for name in s.servers:
            if name not in SERVER_NAMES:
                raise SettingsError("SERVERS: unknown server '%s' (known: %s)" % (name, " ".join(SERVER_NAMES)))
        if "base" in s.servers and not os.access(s.base_bin, os.X_OK):
            raise SettingsError("SERVERS names base: BASE_BIN must be an executable c-examples/server build, got '%s'" % s.base_bin)
        s.scenarios_text = env.get("SCENARIOS") or "keepalive pipelined large_body connection_churn idle_connections instructions_syscalls worker_post"
        s.scenarios = resolve_scenarios(s.scenarios_text, scenario_aliases or {})
        return s

    def port(self, server):
        return self.ports[server]


def resolve_scenarios(text, aliases):
    """Scenario names from SCENARIOS: names or old letters, in the given
    order, each once.  aliases maps every accepted word to its name."""
    names = []
    for word in text.split():
        if word not in aliases:
            known = " ".join(dict.fromkeys(aliases.values()))
            raise SettingsError("SCENARIOS: unknown scenario '%s' (known: %s, or the old letters %s)" % (
                word, known, " ".join(sorted(w for w in aliases if len(w) == 1))))
        if aliases[word] not in names:
            names.append(aliases[word])
    return names
