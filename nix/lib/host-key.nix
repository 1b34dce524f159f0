# Host public keys, as publisher/host-key.ts reads them: base64 of the raw 32-byte Ed25519 key, or an
# OpenSSH "ssh-ed25519 AAAA... comment" line. Returns { ok = true; raw = <base64 of the 32 bytes>; }
# (the form used to find duplicate keys) or { ok = false; reason = "..."; } with the TypeScript texts.
#
# What Nix cannot check: whether the 32 bytes are a point on the curve (that needs arithmetic modulo
# 2^255-19, far beyond 64-bit integers). It does refuse what needs no curve arithmetic: non-canonical
# encodings (y >= p) and the small-order points. `nixfleet publish` / `validate` stay the authority.
let
  inherit (builtins) elemAt length genList isString filter split substring stringLength all elem;
  base64 = import ./base64.nix;
  keyType = "ssh-ed25519";

  u32 = bytes: o: ((elemAt bytes o * 256 + elemAt bytes (o + 1)) * 256 + elemAt bytes (o + 2)) * 256 + elemAt bytes (o + 3);
  slice = bytes: start: n: genList (i: elemAt bytes (start + i)) n;
  # An SSH wire-format string at `offset`: { value (bytes); next } or null when it overruns the blob.
  sshString = bytes: offset:
    if offset + 4 > length bytes then null
    else
      let n = u32 bytes offset; start = offset + 4;
      in if start + n > length bytes then null else { value = slice bytes start n; next = start + n; };
  asciiBytes = s: map (c: (import ./ascii.nix).${c}) (genList (i: substring i 1 s) (stringLength s));

  parseSshLine = text:
    let
      parts = filter (p: isString p && p != "") (split "[[:space:]]+" text);
      first = if parts == [ ] then "" else elemAt parts 0;
      blob = if length parts < 2 then null else base64.decode (elemAt parts 1);
      type = if blob == null then null else sshString blob 0;
      key = if type == null then null else sshString blob type.next;
    in
    if first != keyType then { ok = false; reason = ''only ${keyType} keys are supported, got "${first}"''; }
    else if blob == null then { ok = false; reason = "the ssh-ed25519 key data is not valid base64"; }
    else if key == null || type.value != asciiBytes keyType || key.next != length blob then { ok = false; reason = "the ssh-ed25519 key data is not an OpenSSH ed25519 public key blob"; }
    else if length key.value != 32 then { ok = false; reason = "the ssh-ed25519 key is ${toString (length key.value)} bytes, expected 32"; }
    else { ok = true; bytes = key.value; };

  parseRaw = text:
    let bytes = base64.decode text;
    in if bytes != null && length bytes == 32 then { ok = true; inherit bytes; }
    else { ok = false; reason = ''must be base64 of the raw 32-byte Ed25519 public key, or an OpenSSH "ssh-ed25519 AAAA..." line''; };

  # RFC 8032 decoding fails for y >= p = 2^255 - 19 (bytes little-endian, top bit = sign of x).
  canonicalY = bytes:
    let top = elemAt bytes 31; in
    builtins.bitAnd top 127 != 127 || !(all (i: elemAt bytes i == 255) (genList (i: i + 1) 30)) || elemAt bytes 0 < 237;

  # The eight points of small order, and the two x = 0 points with the sign bit set (not canonical).
  smallOrder = [
    "0100000000000000000000000000000000000000000000000000000000000000"
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
    "0000000000000000000000000000000000000000000000000000000000000080"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"
    "0100000000000000000000000000000000000000000000000000000000000080"
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
  ];

  # Fast path for the common form: canonical base64 of 32 bytes (the regex pins the padding bits),
  # not a small-order point, and without the long run of 0xff bytes every y >= p has. Decoding in Nix
  # is slow; this keeps mkFleet linear and cheap for thousands of hosts.
  smallOrderBase64 = map (hex: base64.encode (hexBytes hex)) smallOrder;
  hexBytes = hex: genList (i: (builtins.fromTOML "v = 0x${substring (2 * i) 2 hex}").v) (stringLength hex / 2);
  plainKey = text:
    builtins.match "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=" text != null
    && !(elem text smallOrderBase64)
    && builtins.match ".*//////////.*" text == null;

  parse = text:
    let r = if substring 0 4 text == "ssh-" then parseSshLine text else parseRaw text;
    in
    if plainKey text then { ok = true; raw = text; } else
    if !r.ok then r
    else if !(canonicalY r.bytes) || elem (base64.toHex r.bytes) smallOrder then
      { ok = false; reason = "is not a valid Ed25519 public key (not a canonical, non-small-order curve point)"; }
    else { ok = true; raw = base64.encode r.bytes; };
in
{
  inherit parse smallOrder;
}
