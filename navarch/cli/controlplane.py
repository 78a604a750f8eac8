"""`navarch control-plane`: run the API server and the heartbeat monitor."""

from __future__ import annotations

import logging
import os
import sys

import click

from navarch.errors import UsageError


@click.command("control-plane")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML configuration file. Without it, the defaults apply.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address to listen on. Overrides server.listen (default 127.0.0.1:50051).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow a non-loopback listen address with no admin or join token set.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Directory of the SQLite store (navarch.db). Overrides store.path; "
    "default: $XDG_DATA_HOME/navarch.",
)
@click.option(
    "--store",
    "store_target",
    metavar="URL",
    help="The store: postgresql://USER@HOST/DB, or a SQLite file (sqlite:PATH or a path). "
    "Overrides [store] url and path.",
)
def control_plane(
    config_path: str | None,
    listen: str | None,
    insecure: bool,
    data_dir: str | None,
    store_target: str | None,
) -> None:
    """Run the control plane: the API server and the heartbeat monitor.

    It prints one line when it is ready, and stops cleanly on SIGINT or SIGTERM.
    """
    import trio

    from navarch.api import server
    from navarch.config import default_config, load_config
    from navarch.daemon.local import LocalMachines

    config = load_config(config_path) if config_path else default_config()
    listen = listen or config.server.listen
    if data_dir and store_target:
        raise UsageError("--data-dir and --store both name the store; give one")
    if store_target:
        store_path = store_target
    elif data_dir:
        store_path = os.path.join(data_dir, "navarch.db")
    else:
        store_path = config.store.target or str(server.default_store_path())
    admin_token = os.environ.get(config.auth.admin_token_env, "")
    join_token = os.environ.get(config.auth.join_token_env, "")
    viewer_token = os.environ.get(config.auth.viewer_token_env, "")
    if viewer_token and (not admin_token or viewer_token in (admin_token, join_token)):
        raise UsageError(
            f"{config.auth.viewer_token_env} is set, so {config.auth.admin_token_env} must be "
            "set too, and the viewer token must differ from the admin and join tokens"
        )
    server.check_exposure(
        listen, config.auth, auth_enabled=bool(admin_token or join_token), insecure=insecure
    )
    if config.bootstrap is not None and not admin_token:
        # Without auth every caller may register any node, and a one-time token means nothing.
        raise UsageError(
            f"[bootstrap] hands new machines one-time tokens, which need auth: set "
            f"{config.auth.admin_token_env} (and keep it secret) before starting the control plane"
        )
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )

    def ready(line: str) -> None:
        print(line, flush=True)

    trio.run(
        lambda: server.serve(
            config.server,
            listen=listen,
            store_path=store_path,
            admin_token=admin_token,
            join_token=join_token,
            viewer_token=viewer_token,
            on_ready=ready,
            config=config,
            machines=LocalMachines.lifelike,
        )
    )
