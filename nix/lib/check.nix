# Typed checkers for plain Nix values, reporting like zod does on the TypeScript side so that both sides
# print the same "path: message" lines. A checker is `path: value: { errors; value; }`: `errors` lists
# every violation under `path`, `value` is the input with defaults applied (absent optional fields stay
# absent), `aborted` says whether a failure is one zod treats as fatal (a wrong type or value, an
# unknown or missing key) rather than a failed check (range, length, pattern): unions depend on it.
# Paths are written as publisher/validate.ts formatPath writes them: a.b[0].c, "(fleet)" at
# the root.
let
  inherit (builtins) typeOf isAttrs isList isString isInt isFloat attrNames filter length concatLists
    concatStringsSep match stringLength genList elemAt listToAttrs substring hasAttr;

  # Marks a field that is absent, so checkers can report "received undefined" like zod.
  absent = { __nixfleetAbsent = true; };
  isAbsent = v: isAttrs v && v ? __nixfleetAbsent;

  typeName = v:
    if isAbsent v then "undefined"
    else {
      int = "number"; float = "number"; set = "object"; list = "array"; null = "null"; bool = "boolean";
      string = "string"; lambda = "function"; path = "string";
    }.${typeOf v};

  showPath = path: if path == "" then "(fleet)" else path;
  field = path: name: if path == "" then name else "${path}.${name}";
  item = path: i: "${path}[${toString i}]";
  quote = s: builtins.toJSON s;

  ok = value: { errors = [ ]; aborted = false; inherit value; };
  fail = path: messages: { errors = map (m: "${showPath path}: ${m}") messages; aborted = false; value = null; };
  abort = path: messages: fail path messages // { aborted = true; };
  expected = what: path: v: abort path [ "Invalid input: expected ${what}, received ${typeName v}" ];
  anyAborted = results: builtins.any (r: r.aborted) results;

  maxSafe = 9007199254740991;

  # A string; `patterns` are [ { regex; message; } ] matched against the whole string (POSIX ERE),
  # `refine` is an optional extra check returning null or a message (host keys, calendar times).
  str = { min ? null, max ? null, patterns ? [ ], refine ? null }: path: v:
    if !(isString v || typeOf v == "path") then expected "string" path v
    else
      let
        s = toString v;
        n = stringLength s;
        messages =
          (if min != null && n < min then [ "Too small: expected string to have >=${toString min} characters" ] else [ ])
          ++ (if max != null && n > max then [ "Too big: expected string to have <=${toString max} characters" ] else [ ])
          ++ map (p: p.message) (filter (p: match p.regex s == null) patterns)
          ++ (let r = if refine == null then null else refine s; in if r == null then [ ] else [ r ]);
      in
      if messages == [ ] then ok s else fail path messages // { value = s; };

  int = { min ? null, max ? null, minMessage ? null, maxMessage ? null }: path: v:
    if isFloat v then fail path [ "Invalid input: expected int, received number" ]
    else if !(isInt v) then expected "number" path v
    else if v > maxSafe || v < -maxSafe then fail path [ "Invalid input: expected int, received number" ]
    else if min != null && v < min then fail path [ (if minMessage != null then minMessage else "Too small: expected number to be >=${toString min}") ]
    else if max != null && v > max then fail path [ (if maxMessage != null then maxMessage else "Too big: expected number to be <=${toString max}") ]
    else ok v;

  literal = value: path: v:
    if v == value then ok v else abort path [ "Invalid input: expected ${builtins.toJSON value}" ];

  enum = values: path: v:
    if isString v && builtins.elem v values then ok v
    else abort path [ "Invalid option: expected one of ${concatStringsSep "|" (map quote values)}" ];

  nullable = checker: path: v: if v == null then ok null else checker path v;

  list = { min ? null, max ? null }: elem: path: v:
    if !(isList v) then expected "array" path v
    else
      let
        n = length v;
        results = genList (i: elem (item path i) (elemAt v i)) n;
        sizeErrors =
          (if min != null && n < min then [ "${path}: Too small: expected array to have >=${toString min} items" ] else [ ])
          ++ (if max != null && n > max then [ "${path}: Too big: expected array to have <=${toString max} items" ] else [ ]);
      in
      { errors = sizeErrors ++ concatLists (map (r: r.errors) results); aborted = anyAborted results; value = map (r: r.value) results; };

  # An object whose keys are names checked by `key` (a checker of strings) and whose values all follow `value`.
  record = key: value: path: v:
    if !(isAttrs v) || isAbsent v || v ? type && v.type == "derivation" then expected "record" path v
    else
      let
        names = attrNames v;
        results = map (name:
          let k = key (field path name) name; in
          if k.errors != [ ] then { inherit name; errors = [ "${field path name}: Invalid key in record" ]; aborted = true; value = null; }
          else let r = value (field path name) v.${name}; in { inherit name; inherit (r) errors aborted value; }) names;
      in
      { errors = concatLists (map (r: r.errors) results); aborted = anyAborted results; value = listToAttrs (map (r: { inherit (r) name value; }) results); };

  # Field specs: { check; } required, { check; optional = true; } may be absent, { check; default; }
  # absent means `default` (not checked, like zod defaults).
  required = check: { inherit check; };
  optional = check: { inherit check; optional = true; };
  withDefault = default: check: { inherit check default; };

  strictObject = fields: path: v:
    if !(isAttrs v) || isAbsent v then expected "object" path v
    else
      let
        unknown = filter (name: !(hasAttr name fields)) (attrNames v);
        unknownErrors =
          if unknown == [ ] then [ ]
          else if length unknown == 1 then [ "${showPath path}: Unrecognized key: ${quote (elemAt unknown 0)}" ]
          else [ "${showPath path}: Unrecognized keys: ${concatStringsSep ", " (map quote unknown)}" ];
        results = map (name:
          let spec = fields.${name}; in
          if hasAttr name v then { inherit name; present = true; } // spec.check (field path name) v.${name}
          else if spec ? default then { inherit name; present = true; errors = [ ]; aborted = false; value = spec.default; }
          else if spec.optional or false then { inherit name; present = false; errors = [ ]; aborted = false; value = null; }
          else { inherit name; present = true; } // spec.check (field path name) absent) (attrNames fields);
      in
      {
        errors = unknownErrors ++ concatLists (map (r: r.errors) results);
        aborted = unknown != [ ] || anyAborted results;
        value = listToAttrs (map (r: { inherit (r) name value; }) (filter (r: r.present) results));
      };

  # A union of single-key objects (Selector, Threshold). zod reports the failed checks of the one member
  # that failed without a fatal issue, and a bare "Invalid input" when every member failed fatally (an
  # object with another or a second key fails every member with an unknown key).
  keyedUnion = members: path: v:
    let names = if isAttrs v && !(isAbsent v) then attrNames v else [ ]; in
    if length names == 1 && hasAttr (elemAt names 0) members then
      let name = elemAt names 0; r = members.${name} (field path name) v.${name}; in
      if r.aborted then abort path [ "Invalid input" ]
      else { inherit (r) errors aborted; value = { ${name} = r.value; }; }
    else abort path [ "Invalid input" ];

  # A union told apart by a string field (Probe.kind); `order` is the members' declaration order,
  # which the error message lists.
  taggedUnion = tag: order: members: path: v:
    let t = if isAttrs v && !(isAbsent v) then v.${tag} or null else null; in
    if isString t && hasAttr t members then members.${t} path v
    else if !(isAttrs v) || isAbsent v then expected "object" path v
    else abort (field path tag) [ "Invalid discriminator value. Expected ${concatStringsSep " | " (map (m: "'${m}'") order)}" ];
in
{
  inherit absent typeName showPath field item ok fail str int literal enum nullable list record strictObject
    keyedUnion taggedUnion required optional withDefault;
}
