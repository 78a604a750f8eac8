"""One name for the admin token: the control plane and the commands read NAVARCH_ADMIN_TOKEN."""

from __future__ import annotations

from support.control_plane_process import control_plane_process
from support.fleet import free_port
from support.navarch_process import run_navarch

TOKEN = "admin-secret"
DEPRECATED = "navarch: NAVARCH_TOKEN is deprecated; set NAVARCH_ADMIN_TOKEN instead\n"


def test_one_environment_serves_the_control_plane_and_the_commands(tmp_path):
    env = {
        "NAVARCH_ADMIN_TOKEN": TOKEN,
        "NAVARCH_JOIN_TOKEN": "join-secret",
        "NAVARCH_TOKEN": "",
        "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    listen = f"127.0.0.1:{free_port()}"
    with control_plane_process("--listen", listen, "--data-dir", str(tmp_path), env=env) as (
        _,
        url,
        _,
    ):
        env["NAVARCH_SERVER"] = url

        ok = run_navarch("list", env=env)
        assert (ok.returncode, ok.stdout, ok.stderr) == (0, "no nodes\n", "")

        old_name = run_navarch(
            "list", env={**env, "NAVARCH_ADMIN_TOKEN": "", "NAVARCH_TOKEN": TOKEN}
        )
        assert (old_name.returncode, old_name.stdout, old_name.stderr) == (
            0,
            "no nodes\n",
            DEPRECATED,
        )

        # The new name wins, and the old one is not mentioned when it is not used.
        both = run_navarch("list", env={**env, "NAVARCH_TOKEN": "stale"})
        assert (both.returncode, both.stderr) == (0, "")

        flag = run_navarch("list", "--token", TOKEN, env={**env, "NAVARCH_ADMIN_TOKEN": ""})
        assert (flag.returncode, flag.stderr) == (0, "")

        missing = run_navarch("list", env={**env, "NAVARCH_ADMIN_TOKEN": ""})
        assert missing.returncode == 1
        assert missing.stderr == (
            f"navarch: the control plane at {url} requires a token; pass --token or set "
            "NAVARCH_ADMIN_TOKEN\n"
        )


def test_help_names_the_new_variable():
    result = run_navarch("list", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "env var: NAVARCH_ADMIN_TOKEN" in result.stdout
