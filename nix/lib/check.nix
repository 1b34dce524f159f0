# Typed checkers for plain Nix values, worded like protocol/schemas/issues.ts words zod's issues on the
# TypeScript side ("required", "must be a string", "unknown field \"x\" (did you mean ...)"), so that
# both sides print the same "path: message" lines. A checker is `path: value: { errors; value; }`: `errors` lists
# every violation under `path`, `value` is the input with defaults applied (absent optional fields stay
# absent), `aborted` says whether a failure is one zod treats as fatal (a wrong type or value, an
# unknown or missing key) rather than a failed check (range, length, pattern): unions depend on it.
# Paths are written as publisher/validate.ts formatPath writes them: a.b[0].c, "(fleet)" at
# the root.
let
  inherit (builtins) typeOf isAttrs isList isString isInt isFloat attrNames filter length concatLists
    concatStringsSep match stringLength genList elemAt listToAttrs substring hasAttr;

  suggest = import ./suggest.nix;

  # Marks a field that is absent, so checkers can report it as "required".
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

  ok = value: { errors = [ ]; messages = [ ]; aborted = false; inherit value; };
  fail = path: messages: { errors = map (m: "${showPath path}: ${m}") messages; inherit messages; aborted = false; value = null; };
  abort = path: messages: fail path messages // { aborted = true; };
  typeWords = { string = "a string"; number = "a number"; array = "an array"; object = "an object"; record = "an object"; };
  expected = what: path: v: abort path [ (if isAbsent v then "required" else "must be ${typeWords.${what}}") ];
  plural = n: what: "${toString n} ${what}${if n == 1 then "" else "s"}";
  # issues.ts sizeWords: "must not be empty", "must have at most 64 items", "must be at least 1".
  sizeWords = origin: bound: atLeast:
    let side = if atLeast then "at least" else "at most"; unit = { string = "character"; array = "item"; }.${origin} or null; in
    if unit == null then "must be ${side} ${toString bound}"
    else if atLeast && bound == 1 then "must not be empty"
    else "must have ${side} ${plural bound unit}";
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
          (if min != null && n < min then [ (sizeWords "string" min true) ] else [ ])
          ++ (if max != null && n > max then [ (sizeWords "string" max false) ] else [ ])
          ++ map (p: p.message) (filter (p: match p.regex s == null) patterns)
          ++ (let r = if refine == null then null else refine s; in if r == null then [ ] else [ r ]);
      in
      if messages == [ ] then ok s else fail path messages // { value = s; };

  int = { min ? null, max ? null, minMessage ? null, maxMessage ? null }: path: v:
    if isFloat v then fail path [ "must be an integer" ]
    else if !(isInt v) then expected "number" path v
    else if v > maxSafe || v < -maxSafe then fail path [ "must be an integer" ]
    else if min != null && v < min then fail path [ (if minMessage != null then minMessage else sizeWords "number" min true) ]
    else if max != null && v > max then fail path [ (if maxMessage != null then maxMessage else sizeWords "number" max false) ]
    else ok v;

  literal = value: path: v:
    if v == value then ok v else abort path [ (if isAbsent v then "required" else "must be ${builtins.toJSON value}") ];

  enum = values: path: v:
    if isString v && builtins.elem v values then ok v
    else abort path [ (if isAbsent v then "required" else "must be one of ${concatStringsSep ", " (map quote values)}") ];

  nullable = checker: path: v: if v == null then ok null else checker path v;

  list = { min ? null, max ? null }: elem: path: v:
    if !(isList v) then expected "array" path v
    else
      let
        n = length v;
        results = genList (i: elem (item path i) (elemAt v i)) n;
        sizeErrors =
          (if min != null && n < min then [ "${path}: ${sizeWords "array" min true}" ] else [ ])
          ++ (if max != null && n > max then [ "${path}: ${sizeWords "array" max false}" ] else [ ]);
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
          if k.errors != [ ] then { inherit name; errors = [ "${field path name}: is not a valid name: ${builtins.head k.messages}" ]; aborted = true; value = null; }
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
        # issues.ts unknownFieldsWords: sorted keys, each with the nearest field the object lacks.
        missing = filter (name: !(hasAttr name v)) (attrNames fields);
        unknownErrors =
          if unknown == [ ] then [ ]
          else [ "${showPath path}: unknown field${if length unknown == 1 then "" else "s"} ${concatStringsSep ", " (map (k: quote k + suggest.didYouMean k missing) unknown)}" ];
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
  # that failed without a fatal issue, and one line naming the forms when every member failed fatally (an
  # object with another or a second key fails every member with an unknown key).
  keyedUnion = members: path: v:
    let
      formsMessage = "must be an object with exactly one valid field of ${concatStringsSep ", " (map quote (attrNames members))}";
      names = if isAttrs v && !(isAbsent v) then attrNames v else [ ]; in
    if isAbsent v then abort path [ "required" ]
    else if length names == 1 && hasAttr (elemAt names 0) members then
      let name = elemAt names 0; r = members.${name} (field path name) v.${name}; in
      if r.aborted then abort path [ formsMessage ]
      else { inherit (r) errors aborted; value = { ${name} = r.value; }; }
    else abort path [ formsMessage ];

  # A union told apart by a string field (Probe.kind); `order` is the members' declaration order,
  # which the error message lists.
  taggedUnion = tag: order: members: path: v:
    let t = if isAttrs v && !(isAbsent v) then v.${tag} or null else null; in
    if isString t && hasAttr t members then members.${t} path v
    else if !(isAttrs v) || isAbsent v then expected "object" path v
    else abort (field path tag) [ "must be one of ${concatStringsSep ", " (map quote order)}" ];
in
{
  inherit absent isAbsent typeName showPath field item ok fail str int literal enum nullable list record strictObject
    keyedUnion taggedUnion required optional withDefault;
}
