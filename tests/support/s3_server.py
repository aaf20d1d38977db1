"""A real S3-compatible server (moto's server mode) on 127.0.0.1, for tests and benchmarks.

`moto_server` runs as a subprocess on a free port and enforces authentication: its first three requests
(unauthenticated, moto's INITIAL_NO_AUTH_ACTION_COUNT) create an IAM user allowed everything and its access
key, and every later request must be signed with that key. So wrong credentials fail as they would on AWS,
which dummy keys on a server that checks nothing could never show.

    with s3_server(tmp_path) as server:
        server.create_bucket("warcs")
        server.upload(local_path, "warcs", "crawl/a.warc.gz")
        subprocess.run(["curate", "ingest", "--input", "s3://warcs/crawl/*.warc.gz", ...], env=server.env())
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.cluster import free_port

REGION = "us-east-1"
S3_USER = "curate-tests"
STARTUP_TIMEOUT = 30.0
_ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]
    log: Path

    def env(self, base: dict[str, str] | None = None, **overrides: str) -> dict[str, str]:
        """`base` (default: this process's environment) with the variables every AWS client reads."""
        env = dict(os.environ if base is None else base)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=self.access_key,
            AWS_SECRET_ACCESS_KEY=self.secret_key,
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
        )
        # No profile or shared file of this machine may stand in for the keys above.
        env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
        env.pop("AWS_PROFILE", None)
        env.update(overrides)
        return env

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def upload(self, path: Path, bucket: str, key: str) -> None:
        self.client().upload_file(str(path), bucket, key)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _wait_ready(process: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited ({process.returncode}):\n{log.read_text(errors='replace')[-2000:]}")
        try:
            # moto's own health endpoint: not an AWS action, so it does not use up an unauthenticated request.
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer on {endpoint} within {STARTUP_TIMEOUT:.0f} s")


def _make_user(endpoint: str) -> tuple[str, str]:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        region_name=REGION,
    )
    iam.create_user(UserName=S3_USER)
    iam.put_user_policy(UserName=S3_USER, PolicyName="allow-all", PolicyDocument=_ALLOW_ALL)
    key = iam.create_access_key(UserName=S3_USER)["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


@contextmanager
def s3_server(work_dir: Path) -> Iterator[S3Server]:
    """Start moto_server on 127.0.0.1 (log in `work_dir`), yield it with a working access key, stop it."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = work_dir / "moto_server.log"
    executable = Path(sys.executable).parent / "moto_server"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(executable), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        _wait_ready(process, endpoint, log)
        access_key, secret_key = _make_user(endpoint)
        yield S3Server(endpoint, access_key, secret_key, process, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
