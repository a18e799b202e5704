"""Amazon Neptune IAM authentication: a SigV4-signed WebSocket handshake.

Neptune with IAM auth enabled refuses a WebSocket upgrade unless its headers carry an
AWS Signature Version 4 for the service ``neptune-db``. The signature is made over an
HTTP ``GET`` of the same host and path, with the credentials and region botocore finds
(environment, shared config, instance role). botocore is optional: only IAM users need it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

from graph.errors import GraphUnavailable

SIGNATURE_LIFETIME_S: Final = 240.0
"""Re-sign before reconnecting after this long: Neptune rejects signatures older than
five minutes, and the driver opens pooled connections lazily."""


def neptune_sigv4_headers(url: str, region: str | None = None) -> dict[str, str]:
    """Headers that authenticate a WebSocket handshake to ``url`` with Neptune IAM auth."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.session import Session
    except ImportError as error:
        raise GraphUnavailable(
            "Neptune IAM authentication signs the connection with botocore, which is not "
            "installed: pip install botocore (or pass neptune_iam=False)"
        ) from error
    session = Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise GraphUnavailable(
            "Neptune IAM authentication found no AWS credentials (environment variables, "
            "~/.aws/credentials or an instance role)"
        )
    region = region or session.get_config_variable("region")
    if not region:
        raise GraphUnavailable(
            "Neptune IAM authentication needs an AWS region: pass aws_region or set "
            "AWS_REGION / AWS_DEFAULT_REGION"
        )
    parts = urlsplit(url)
    scheme = "https" if parts.scheme in ("wss", "https") else "http"
    signed_url = urlunsplit((scheme, parts.netloc, parts.path or "/gremlin", "", ""))
    request = AWSRequest(method="GET", url=signed_url, data=None)
    SigV4Auth(credentials, "neptune-db", region).add_auth(request)
    headers = {str(key): str(value) for key, value in request.headers.items()}
    # The signature covers the host; send it as signed rather than as aiohttp derives it.
    headers.setdefault("Host", parts.netloc)
    return headers
