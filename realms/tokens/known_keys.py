"""Publicly known example keys: keys whose private half is printed in an RFC or a widely copied spec.

Anyone can sign with such a key (RFC 7515 Appendix A, RFC 7517 Appendix A-C, RFC 8037 A.1,
RFC 7520 §3, ...), yet they turn up in real trust bundles and JWKS documents, copied from an
example. A verifier must never trust one. ``is_publicly_known(key)`` names the document that
published a key, or returns None.

A key is recognised by its public material, not by its ``kid``, ``use`` or ``alg``: an RSA
modulus (the exponent does not matter: whoever knows the factors can sign with any exponent),
an EC curve and x coordinate (x alone also matches the negated point, whose private key is
just as known), an OKP curve and public bytes, or the bytes of a symmetric key. Renaming a
key does not hide it. ``known_by_thumbprint`` finds one by its RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519

__all__ = ["KNOWN_KEYS", "KnownKey", "is_publicly_known", "jwk_thumbprint", "known_by_thumbprint"]


@dataclass(frozen=True, slots=True)
class KnownKey:
    """One published key: where it was published, and its public members as a JWK."""

    citation: str
    jwk: Mapping[str, str]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError("a JWK member must be a string")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _ec(crv: str, x: str, y: str) -> dict[str, str]:
    return {"kty": "EC", "crv": crv, "x": x, "y": y}


def _ec_hex(crv: str, x: str, y: str) -> dict[str, str]:
    return _ec(crv, _b64(bytes.fromhex(x)), _b64(bytes.fromhex(y)))


def _rsa(n: str, e: str = "AQAB") -> dict[str, str]:
    return {"kty": "RSA", "n": n, "e": e}


def _okp_hex(crv: str, x: str) -> dict[str, str]:
    return {"kty": "OKP", "crv": crv, "x": _b64(bytes.fromhex(x))}


def _oct(k: str) -> dict[str, str]:
    return {"kty": "oct", "k": k}


_EC_CURVES: Mapping[str, str] = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521",
                                 "secp256k1": "secp256k1"}  # fmt: skip


def _jwk_of(key: Any) -> dict[str, str]:
    """The public JWK members of a ``cryptography`` public or private key object."""
    if hasattr(key, "public_key"):  # a private key: its public half
        key = key.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        return _rsa(_b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                    _b64(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")))  # fmt: skip
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = (key.curve.key_size + 7) // 8
        point = key.public_numbers()
        crv = _EC_CURVES.get(key.curve.name, key.curve.name)
        return _ec(crv, _b64(point.x.to_bytes(size, "big")), _b64(point.y.to_bytes(size, "big")))
    for kind, crv in ((ed25519.Ed25519PublicKey, "Ed25519"), (ed448.Ed448PublicKey, "Ed448"),
                      (x25519.X25519PublicKey, "X25519"), (x448.X448PublicKey, "X448")):  # fmt: skip
        if isinstance(key, kind):
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": crv, "x": _b64(raw)}
    raise TypeError(f"not a key this table knows: {type(key).__name__}")


def _pem(text: str) -> dict[str, str]:
    """The JWK of a PEM public key (SubjectPublicKeyInfo, or PKCS#1 ``RSA PUBLIC KEY``)."""
    data = "\n".join(line.strip() for line in text.strip().splitlines()).encode("ascii")
    loaded = (
        serialization.load_pem_public_key(data)
        if b"BEGIN PUBLIC KEY" in data
        else serialization.load_der_public_key(_pkcs1_to_spki(data))
    )
    return _jwk_of(loaded)


def _pkcs1_to_spki(pem: bytes) -> bytes:
    """Wrap a PKCS#1 RSAPublicKey (RFC 8017 A.1.1) in a SubjectPublicKeyInfo for loading."""
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    der = base64.b64decode(body)
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")  # rsaEncryption, NULL
    bit_string = b"\x03" + _der_length(len(der) + 1) + b"\x00" + der
    content = algorithm + bit_string
    return b"\x30" + _der_length(len(content)) + content


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


# Public members only; the private halves are printed in the cited documents. Why a table at
# all: each of these keys is copied into real configurations, and anyone can sign with it.
KNOWN_KEYS: tuple[KnownKey, ...] = (
    # RFC 7515 (JWS) Appendix A: the keys of its worked examples.
    KnownKey("RFC 7515 Appendix A.1 (HMAC key of the HS256 example)", _oct(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")),
    KnownKey("RFC 7515 Appendix A.2 (RSA key of the RS256 example)", _rsa(
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
        "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
        "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
        "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
        "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
        "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ")),
    KnownKey("RFC 7515 Appendix A.3 (P-256 key of the ES256 example)", _ec(
        "P-256", "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")),
    KnownKey("RFC 7515 Appendix A.4 (P-521 key of the ES512 example)", _ec(
        "P-521",
        "AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
        "ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2")),
    # RFC 7516 (JWE) Appendix A.
    KnownKey("RFC 7516 Appendix A.1 (RSA key of the RSA-OAEP example)", _rsa(
        "oahUIoWw0K0usKNuOR6H4wkf4oBUXHTxRvgb48E-BVvxkeDNjbC4he8rUW"
        "cJoZmds2h7M70imEVhRU5djINXtqllXI4DFqcI1DgjT9LewND8MW2Krf3S"
        "psk_ZkoFnilakGygTwpZ3uesH-PFABNIUYpOiN15dsQRkgr0vEhxN92i2a"
        "sbOenSZeyaxziK72UwxrrKoExv6kc5twXTq4h-QChLOln0_mtUZwfsRaMS"
        "tPs6mS6XrgxnxbWhojf663tuEQueGC-FCMfra36C9knDFGzKsNa7LZK2dj"
        "YgyD3JR_MB_4NUJW_TqOQtwHYbxevoJArm-L5StowjzGy-_bq6Gw")),
    KnownKey("RFC 7516 Appendix A.2 (RSA key of the RSAES-PKCS1-v1_5 example)", _rsa(
        "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1Wl"
        "UzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDpre"
        "cbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_"
        "7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBI"
        "Y2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU"
        "7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw")),
    KnownKey("RFC 7516 Appendix A.3 and RFC 7517 Appendix A.3 (AES key wrap key)", _oct("GawgguFyGrWKav7AX4VKUg")),
    # RFC 7517 (JWK) Appendices A-C.
    KnownKey("RFC 7517 Appendix A.1 (P-256 key \"1\")", _ec(
        "P-256", "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM")),
    KnownKey("RFC 7517 Appendix A.1 and RFC 7638 §3.1 (RSA key \"2011-04-29\")", _rsa(
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx"
        "4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
        "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbI"
        "SD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqb"
        "w0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")),
    KnownKey("RFC 7517 Appendix B (RSA key \"1b94c\" with a certificate chain)", _rsa(
        "vrjOfz9Ccdgx5nQudyhdoR17V-IubWMeOZCwX_jj0hgAsz2J_pqYW08"
        "PLbK_PdiVGKPrqzmDIsLI7sA25VEnHU1uCLNwBuUiCO11_-7dYbsr4iJmG0Q"
        "u2j8DsVyT1azpJC_NG84Ty5KKthuCaPod7iI7w0LK9orSMhBEwwZDCxTWq4a"
        "YWAchc8t-emd9qOvWtVMDC2BXksRngh6X5bUYLy6AyHKvj-nUy1wgzjYQDwH"
        "MTplCoLtU-o-8SNnZ1tmRoGE9uJkBLdh5gFENabWnU5m1ZqZPdwS-qo-meMv"
        "VfJb6jJVWRpl2SUtCnYG2C32qvbWbjZ_jBPD5eunqsIo1vQ")),
    KnownKey("RFC 7517 Appendix C.1 (RSA key \"juliet@capulet.lit\")", _rsa(
        "t6Q8PWSi1dkJj9hTP8hNYFlvadM7DflW9mWepOJhJ66w7nyoK1gPNqFMSQRy"
        "O125Gp-TEkodhWr0iujjHVx7BcV0llS4w5ACGgPrcAd6ZcSR0-Iqom-QFcNP"
        "8Sjg086MwoqQU_LYywlAGZ21WSdS_PERyGFiNnj3QQlO8Yns5jCtLCRwLHL0"
        "Pb1fEv45AuRIuUfVcPySBWYnDyGxvjYGDSM-AqWS9zIQ2ZilgT-GqUmipg0X"
        "OC0Cc20rgLe2ymLHjpHciCKVAbY5-L32-lSeZO-Os6U15_aXrk9Gw8cPUaX1"
        "_I8sLGuSiVdt3C_Fn2PZ3Z8i744FPFGGcG1qs2Wz-Q")),
    # RFC 7518 (JWA) Appendix C: the ECDH-ES example.
    KnownKey("RFC 7518 Appendix C (P-256 key of Alice, ECDH-ES example)", _ec(
        "P-256", "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0", "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps")),
    KnownKey("RFC 7518 Appendix C (P-256 key of Bob, ECDH-ES example)", _ec(
        "P-256", "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ", "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck")),
    # RFC 7520 (JOSE cookbook) §3-§5.
    KnownKey("RFC 7520 §3.1 (P-521 key \"bilbo.baggins@hobbiton.example\")", _ec(
        "P-521",
        "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
        "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1")),
    KnownKey("RFC 7520 §3.3 (RSA key \"bilbo.baggins@hobbiton.example\")", _rsa(
        "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT"
        "-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV"
        "wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-"
        "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde"
        "3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC"
        "LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g"
        "HdrNP5zw")),
    KnownKey("RFC 7520 §3.5 (HMAC key \"018c0ae5-4d9b-471b-bfd6-eef314bc7037\")",
             _oct("hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg")),
    KnownKey("RFC 7520 §5.1 (RSA key \"frodo.baggins@hobbiton.example\")", _rsa(
        "maxhbsmBtdQ3CNrKvprUE6n9lYcregDMLYNeTAWcLj8NnPU9XIYegT"
        "HVHQjxKDSHP2l-F5jS7sppG1wgdAqZyhnWvXhYNvcM7RfgKxqNx_xAHx"
        "6f3yy7s-M9PSNCwPC2lh6UAkR4I00EhV9lrypM9Pi4lBUop9t5fS9W5U"
        "NwaAllhrd-osQGPjIeI1deHTwx-ZTHu3C60Pu_LJIl6hKn9wbwaUmA4c"
        "R5Bd2pgbaY7ASgsjCUbtYJaNIHSoHXprUdJZKUMAzV0WOKPfA6OPI4oy"
        "pBadjvMZ4ZAj3BnXaSYsEZhaueTXvZB4eZOAjIyh2e_VOIKVMsnDrJYA"
        "VotGlvMQ")),
    KnownKey("RFC 7520 §5.2 (RSA key \"samwise.gamgee@hobbiton.example\")", _rsa(
        "wbdxI55VaanZXPY29Lg5hdmv2XhvqAhoxUkanfzf2-5zVUxa6prHRr"
        "I4pP1AhoqJRlZfYtWWd5mmHRG2pAHIlh0ySJ9wi0BioZBl1XP2e-C-Fy"
        "XJGcTy0HdKQWlrfhTm42EW7Vv04r4gfao6uxjLGwfpGrZLarohiWCPnk"
        "Nrg71S2CuNZSQBIPGjXfkmIy2tl_VWgGnL22GplyXj5YlBLdxXp3XeSt"
        "sqo571utNfoUTU8E4qdzJ3U1DItoVkPGsMwlmmnJiwA7sXRItBCivR4M"
        "5qnZtdw-7v4WuR4779ubDuJ5nalMv2S66-RPcnFAzWSKxtBDnFJJDGIU"
        "e7Tzizjg1nms0Xq_yPub_UOlWn0ec85FCft1hACpWG8schrOBeNqHBOD"
        "FskYpUc2LC5JA2TaPF2dA67dg1TTsC_FupfQ2kNGcE1LgprxKHcVWYQb"
        "86B-HozjHZcqtauBzFNV5tbTuB-TpkcvJfNcFLlH3b8mb-H_ox35FjqB"
        "SAjLKyoeqfKTpVjvXhd09knwgJf6VKq6UC418_TOljMVfFTWXUxlnfhO"
        "OnzW6HSSzD1c9WrCuVzsUMv54szidQ9wf1cYWf3g5qFDxDQKis99gcDa"
        "iCAwM3yEBIzuNeeCa5dartHDb1xEB_HcHSeYbghbMjGfasvKn0aZRsnT"
        "yC0xhWBlsolZE")),
    KnownKey("RFC 7520 §5.4 (P-384 key \"peregrin.took@tuckborough.example\")", _ec(
        "P-384",
        "YU4rRUzdmVqmRtWOs2OpDE_T5fsNIodcG8G5FWPrTPMyxpzsSOGaQLpe2FpxBmu2",
        "A8-yxCHxkfBz3hKZfI1jUYMjUhsEveZ9THuwFjH2sCNdtksRJU7D5-SkgaFL1ETP")),
    KnownKey("RFC 7520 §5.5 and RFC 9052 Appendix C.7 (P-256 key \"meriadoc.brandybuck@buckland.example\")",
             _ec_hex("P-256", "65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d",
                     "1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c")),
    # RFC 9052 (COSE) Appendix C.7: its other example keys.
    KnownKey("RFC 9052 Appendix C.7 (P-256 key \"11\")",
             _ec_hex("P-256", "bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff",
                     "20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e")),
    KnownKey("RFC 9052 Appendix C.7 (P-256 key \"peregrin.took@tuckborough.example\")",
             _ec_hex("P-256", "98f50a4ff6c05861c8860d13a638ea56c3f5ad7590bbfbf054e1c7b4d91d6280",
                     "f01400b089867804b8e9fc96c3932161f1934f4223069170d924b7e03bf822bb")),
    # RFC 8037 (CFRG curves in JOSE) Appendix A, and the RFC 8032 / RFC 7748 vectors it builds on.
    KnownKey("RFC 8037 Appendix A.1 and RFC 8032 §7.1 TEST 1 (Ed25519)",
             _okp_hex("Ed25519", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")),
    KnownKey("RFC 8032 §7.1 TEST 2 (Ed25519)",
             _okp_hex("Ed25519", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")),
    KnownKey("RFC 8032 §7.1 TEST 3 (Ed25519)",
             _okp_hex("Ed25519", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025")),
    KnownKey("RFC 8032 §7.1 TEST 1024 (Ed25519)",
             _okp_hex("Ed25519", "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e")),
    KnownKey("RFC 8037 Appendix A.6 and RFC 7748 §6.1 (X25519 key of Alice)",
             _okp_hex("X25519", "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")),
    KnownKey("RFC 8037 Appendix A.6 and RFC 7748 §6.1 (X25519 key of Bob)",
             _okp_hex("X25519", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")),
    # RFC 9421 (HTTP Message Signatures) Appendix B.1: keys "MUST NOT be used" other than for testing.
    KnownKey("RFC 9421 Appendix B.1.1 (RSA key \"test-key-rsa\")", _pem("""
        -----BEGIN RSA PUBLIC KEY-----
        MIIBCgKCAQEAhAKYdtoeoy8zcAcR874L8cnZxKzAGwd7v36APp7Pv6Q2jdsPBRrw
        WEBnez6d0UDKDwGbc6nxfEXAy5mbhgajzrw3MOEt8uA5txSKobBpKDeBLOsdJKFq
        MGmXCQvEG7YemcxDTRPxAleIAgYYRjTSd/QBwVW9OwNFhekro3RtlinV0a75jfZg
        kne/YiktSvLG34lw2zqXBDTC5NHROUqGTlML4PlNZS5Ri2U4aCNx2rUPRcKIlE0P
        uKxI4T+HIaFpv8+rdV6eUgOrB2xeI1dSFFn/nnv5OoZJEIB+VmuKn3DCUcCZSFlQ
        PSXSfBDiUGhwOw76WuSSsf1D4b/vLoJ10wIDAQAB
        -----END RSA PUBLIC KEY-----""")),
    KnownKey("RFC 9421 Appendix B.1.2 (RSA-PSS key \"test-key-rsa-pss\")", _pem("""
        -----BEGIN PUBLIC KEY-----
        MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
        +QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
        oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
        gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
        Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
        aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
        2wIDAQAB
        -----END PUBLIC KEY-----""")),
    KnownKey("RFC 9421 Appendix B.1.3 (P-256 key \"test-key-ecc-p256\")", _pem("""
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
        w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
        -----END PUBLIC KEY-----""")),
    KnownKey("RFC 9421 Appendix B.1.4 (Ed25519 key \"test-key-ed25519\")", _pem("""
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
        -----END PUBLIC KEY-----""")),
    KnownKey("RFC 9421 Appendix B.1.5 (HMAC key \"test-shared-secret\")", _oct(_b64(base64.b64decode(
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==")))),
    KnownKey("draft-cavage-http-signatures-12 Appendix C (RSA key \"Test\")", _pem("""
        -----BEGIN PUBLIC KEY-----
        MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
        6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
        Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
        oYi+1hqp1fIekaxsyQIDAQAB
        -----END PUBLIC KEY-----""")),
)  # fmt: skip


# -- identity ------------------------------------------------------------------------------

_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "oct": ("k", "kty"),
}  # fmt: skip

Material = tuple[Any, ...]


def _material(jwk: Mapping[str, Any]) -> Material:
    """What identifies a key, whatever its kid, use, alg or (RSA) exponent."""
    kty = jwk.get("kty")
    if kty == "RSA":
        return ("RSA", int.from_bytes(_unb64(jwk["n"]), "big"))
    if kty == "EC":
        # Why x alone: the point (x, -y) has the private key n - d, just as well known.
        return ("EC", str(jwk["crv"]), int.from_bytes(_unb64(jwk["x"]), "big"))
    if kty == "OKP":
        return ("OKP", str(jwk["crv"]), _unb64(jwk["x"]))
    if kty == "oct":
        return ("oct", _unb64(jwk["k"]))
    raise ValueError(f"unknown key type {kty!r}")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 §3 thumbprint (SHA-256, base64url) of a JWK's required public members."""
    members = _REQUIRED.get(str(jwk.get("kty")))
    if members is None:
        raise ValueError(f"unknown key type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("utf-8")).digest())


_BY_MATERIAL: dict[Material, str] = {}
_BY_THUMBPRINT: dict[str, str] = {}
for _known in KNOWN_KEYS:
    _BY_MATERIAL.setdefault(_material(_known.jwk), _known.citation)
    _BY_THUMBPRINT.setdefault(jwk_thumbprint(_known.jwk), _known.citation)


def known_by_thumbprint(thumbprint: str) -> str | None:
    """The citation of the published key with this RFC 7638 thumbprint, else None."""
    return _BY_THUMBPRINT.get(thumbprint)


def is_publicly_known(public_key: Any) -> str | None:
    """The document that published ``public_key`` (its private half is public), else None.

    ``public_key``: a ``cryptography`` public or private key object, or a JWK mapping (only its
    public members are read). Matching is on key material, never on ``kid``. Input that is not
    a key at all returns None: refusing it is the key parser's job, not this table's.
    """
    try:
        jwk = dict(public_key) if isinstance(public_key, Mapping) else _jwk_of(public_key)
        found = _BY_MATERIAL.get(_material(jwk))
        if found is None and set(_REQUIRED.get(str(jwk.get("kty")), ())) <= set(jwk):
            found = _BY_THUMBPRINT.get(jwk_thumbprint(jwk))
        return found
    except (KeyError, ValueError, TypeError, binascii.Error):
        return None
