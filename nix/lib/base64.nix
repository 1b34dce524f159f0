# Base64 (RFC 4648, standard alphabet) in plain Nix, just enough to compare host keys: an OpenSSH
# "ssh-ed25519 AAAA..." line and the base64 of the raw 32-byte key must be recognised as the same key.
# Bytes are lists of integers 0-255.
let
  inherit (builtins) genList stringLength substring listToAttrs elemAt length foldl' concatStringsSep div bitAnd;

  alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  charAt = s: i: substring i 1 s;
  valueOf = listToAttrs (genList (i: { name = charAt alphabet i; value = i; }) 64);
  hexDigits = "0123456789abcdef";

  chars = s: genList (charAt s) (stringLength s);

  # Strict decoding: only canonical text (length a multiple of 4, at most two "=", zero padding bits)
  # decodes, which is what the TypeScript side (decode, then re-encode and compare) accepts.
  decode = text:
    let
      len = stringLength text;
      pad = if len >= 2 && substring (len - 2) 2 text == "==" then 2 else if len >= 1 && substring (len - 1) 1 text == "=" then 1 else 0;
      body = substring 0 (len - pad) text;
      digits = map (c: valueOf.${c} or null) (chars body);
      wellFormed = len - pad > 0 && len - 4 * (div len 4) == 0 && !(builtins.elem null digits) && builtins.match "[A-Za-z0-9+/]*={0,2}" text != null;
      groups = div (length digits + 3) 4;
      digit = i: if i < length digits then elemAt digits i else 0;
      groupBytes = g:
        let n = foldl' (acc: k: acc * 64 + digit (g * 4 + k)) 0 [ 0 1 2 3 ];
        in [ (div n 65536) (bitAnd (div n 256) 255) (bitAnd n 255) ];
      allBytes = builtins.concatLists (genList groupBytes groups);
      bytes = genList (elemAt allBytes) (length allBytes - pad);
    in
    if !wellFormed then null
    else if encode bytes == text then bytes
    else null;

  encode = bytes:
    let
      n = length bytes;
      byte = i: if i < n then elemAt bytes i else 0;
      groups = div (n + 2) 3;
      groupText = g:
        let
          v = byte (g * 3) * 65536 + byte (g * 3 + 1) * 256 + byte (g * 3 + 2);
          present = n - g * 3;
          sextet = k: charAt alphabet (bitAnd (div v (elemAt [ 262144 4096 64 1 ] k)) 63);
        in
        concatStringsSep "" (genList (k: if k <= present then sextet k else "=") 4);
    in
    concatStringsSep "" (genList groupText groups);

  toHex = bytes: concatStringsSep "" (map (b: charAt hexDigits (div b 16) + charAt hexDigits (bitAnd b 15)) bytes);
in
{
  inherit decode encode toHex;
}
