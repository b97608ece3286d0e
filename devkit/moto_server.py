"""moto's server with one correction for the deployment rehearsal.

moto checks the SigV4 signature of S3 requests against the URL as its web server decoded it, so a
request whose key has "=" or "+", or whose list prefix has "/", fails with SignatureDoesNotMatch
once IAM is enforced, whichever SDK signed it. The signature is checked here against the raw request
URI (as S3 does); everything else is moto as installed.
"""
import sys

from moto.core import authorization

_check = authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action


def _authenticate_and_authorize_action(self, iam_request_cls, resource="*"):
    environ = getattr(getattr(self, "request", None), "environ", None) or {}
    raw = environ.get("RAW_URI")
    if not raw:
        return _check(self, iam_request_cls, resource)
    decoded = self.uri
    self.uri = "http://moto" + raw
    try:
        return _check(self, iam_request_cls, resource)
    finally:
        self.uri = decoded


authorization.ActionAuthenticatorMixin._authenticate_and_authorize_action = _authenticate_and_authorize_action

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
