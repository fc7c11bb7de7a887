"""Trust decisions about certificates: chains to anchors, revocation status, trusted time, evidence.

One package so that what the gateway means by "this signer was trusted at that moment" lives in one
place: :mod:`chain` (paths to the configured anchors and the end-entity policy), :mod:`ocsp` and
:mod:`crl` (status sources), :mod:`revocation` (the cached, freshness-windowed decision),
:mod:`timestamps` (RFC 3161 tokens), :mod:`evidence` (what is kept so the decision can be re-checked
offline) and :mod:`dev_pki` (the development CA's responder, CRL and TSA, served in demo mode only).
"""
