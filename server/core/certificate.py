"""The names an X.509 certificate is valid for, read from its PEM without a crypto library.

The health check (`server/tools/healthcheck.py`) connects to 127.0.0.1 but must expect a name the
server's certificate holds; grpcio can override the expected name but not say what it is. This
reads the few DER elements needed: the subjectAltName extension's DNS names and IP addresses,
else the subject's common name, as gRPC checks them.
"""

from __future__ import annotations

import base64
import ipaddress
import re

# What the check reads of the server's certificate (X.509 in DER): the subjectAltName extension's
# DNS names and IP addresses, else the subject's common name, as gRPC checks them.
PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
VERSION_TAG, EXTENSIONS_TAG = 0xA0, 0xA3  # TBSCertificate's [0] version and [3] extensions
SUBJECT_AT = 4  # TBSCertificate without its version: serial, signature, issuer, validity, subject
SUBJECT_ALT_NAME_OID = bytes.fromhex("551d11")  # 2.5.29.17
COMMON_NAME_OID = bytes.fromhex("550403")  # 2.5.4.3
DNS_NAME_TAG, IP_ADDRESS_TAG = 0x82, 0x87  # GeneralName [2] dNSName, [7] iPAddress


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, content) of each DER element laid end to end in `data`."""
    items, at = [], 0
    while at < len(data):
        tag, length = data[at], data[at + 1]
        at += 2
        if length & 0x80:  # long form: the low bits count the bytes of the length
            size = length & 0x7F
            length, at = int.from_bytes(data[at : at + size], "big"), at + size
        items.append((tag, data[at : at + length]))
        at += length
    return items


def _alt_names(extensions: bytes) -> list[str]:
    """DNS names, then IP addresses, of the subjectAltName in an [3] extensions block."""
    dns, ips = [], []
    for _, extension in _der_items(_der_items(extensions)[0][1]):
        fields = _der_items(extension)  # extnID, critical (optional), extnValue
        if fields[0][1] == SUBJECT_ALT_NAME_OID:
            for tag, name in _der_items(_der_items(fields[-1][1])[0][1]):
                if tag == DNS_NAME_TAG:
                    dns.append(name.decode("ascii"))
                elif tag == IP_ADDRESS_TAG:
                    ips.append(str(ipaddress.ip_address(name)))
    return dns + ips


def certificate_names(pem: bytes) -> list[str]:
    """The names the first certificate in `pem` is valid for, as gRPC checks them: its
    subjectAltName DNS names and IP addresses, else its subject's common name. Raises
    ValueError (or IndexError) on anything that is not a PEM X.509 certificate."""
    found = PEM_CERTIFICATE.search(pem)
    if found is None:
        raise ValueError("no PEM certificate")
    certificate = _der_items(base64.b64decode(found[1]))[0][1]
    tbs = _der_items(_der_items(certificate)[0][1])
    names = [n for tag, block in tbs if tag == EXTENSIONS_TAG for n in _alt_names(block)]
    if names:
        return names
    subject = [content for tag, content in tbs if tag != VERSION_TAG][SUBJECT_AT]
    for _, relative_name in _der_items(subject):
        for _, attribute in _der_items(relative_name):
            oid, value = _der_items(attribute)
            if oid[1] == COMMON_NAME_OID:
                return [value[1].decode()]
    return []


def expected_name(pem: bytes, host: str) -> str | None:
    """The name to expect in the server's certificate when the check connects to `host`:
    None when the certificate names `host` (or cannot be read: the handshake then says why),
    else its first name, a wildcard filled in with a label it matches."""
    try:
        names = certificate_names(pem)
    except (ValueError, IndexError):
        return None
    if not names or host in names:
        return None
    return "journeyman" + names[0][1:] if names[0].startswith("*.") else names[0]
