"""Credentials out of text that people see: error messages, ``/health``, log lines.

Client libraries quote the URL or connection string they failed on, and a deployment's URLs often carry a
secret: the user info of ``http://user:...@mlflow:5000``, a presigned ``?X-Amz-Signature=...``, Redis's
``host:6379,password=...``. :func:`scrub_secrets` masks those parts wherever they appear in free text and leaves
the rest (scheme, host, port, path) readable, so the message still says which service failed.
"""

from __future__ import annotations

import logging
import re

#: What replaces a secret.
MASK = "***"

# The user-info part of any URL in the text: from "scheme://" to the last "@" before the host's end. Greedy, so
# a password holding an unescaped "@" is masked whole.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#'\"<>]*@")

# "name=value" pairs whose name says the value is a secret: query parameters (?token=..., &X-Amz-Signature=...),
# connection strings (host:6379,password=...) and "key=value" lists in messages.
_SECRET_NAMES = (  # nosec B105 - names of secrets to scrub, not a secret
    r"password|passwd|pwd|pass|secret|client_secret|token|access_token|refresh_token|id_token|auth|"
    r"api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret[_-]?(?:access[_-]?)?key|private[_-]?key|"
    r"accountkey|sharedaccesskey|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"awsaccesskeyid|sas|credentials?"
)
_SECRET_PAIR = re.compile(
    # The name starts the text or follows a separator, so "max_token=" or "passenger=" is not a match.
    rf"(?<![^\s?&;,(\"'])(?P<name>{_SECRET_NAMES})(?P<equals>\s*=\s*)(?:'[^']*'|\"[^\"]*\"|[^\s&;,'\")]+)",
    re.IGNORECASE,
)

# HTTP authorization values quoted in a message ("Authorization: Bearer abc...", "Basic dXNlcjpw..."); 16
# characters or more, so that prose such as "Bearer authentication" stays readable.
_AUTHORIZATION = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{16,}", re.IGNORECASE)


def scrub_secrets(text: str) -> str:
    """``text`` with every credential it quotes masked.

    Masks the user info of every URL (``https://***@host/...``), the value of every ``name=value`` pair whose
    name is a secret's (``password``, ``token``, ``api_key``, ``X-Amz-Signature``, ``sig``...), and the
    credential of ``Bearer``/``Basic`` authorization values. Everything else is kept.

    :param text: a message, a URL or a connection string.
    :return: the same text with ``***`` in place of each secret.
    """
    text = _URL_USERINFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    text = _SECRET_PAIR.sub(lambda match: f"{match['name']}{match['equals']}{MASK}", text)
    return _AUTHORIZATION.sub(lambda match: f"{match['scheme']} {MASK}", text)


class SecretScrubbingFilter(logging.Filter):
    """A logging filter that masks credentials (:func:`scrub_secrets`) in a record's message and traceback.

    Attach it to a handler to cover every record the handler writes, whichever library logged it, or to a
    logger to cover the records logged through that logger. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_secrets(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set: format the traceback once here, scrubbed.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_secrets(record.stack_info)
        return True
