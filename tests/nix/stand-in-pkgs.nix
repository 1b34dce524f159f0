# A stand-in for the parts of nixpkgs our Nix code uses (nixpkgs is not available offline). `lib` has
# the functions the modules and nix/package.nix call, and `types` with NixOS's checks and messages;
# `pkgs` has the builders nix/package.nix calls, which check the arguments the real ones need
# (pkgs/build-support/node/build-npm-package and import-npm-lock) and return a derivation-like value
# carrying them, so tests can read what would be built.
let
  B = builtins;
  inherit (B) attrNames listToAttrs filter isString isInt isAttrs isBool isPath isList match concatStringsSep replaceStrings split elemAt length hasAttr all;

  show = v: if isPath v then toString v else if isAttrs v && v ? outPath then "<derivation ${v.name or v.outPath}>" else B.toJSON v;
  fail = path: typeName: value: throw "A definition for option `${path}' is not of type `${typeName}'. Definition value: ${show value}";

  # A type checks a definition and returns the value the option takes (a submodule applies its own
  # options: unknown ones fail, defaults fill in).
  simple = name: check: { inherit name; verify = path: v: if check v then v else fail path name v; };
  isDerivation = v: isAttrs v && (v.type or null) == "derivation";
  isStorePath = v: isString v && match "/nix/store/[0-9a-z]{32}-.+" v != null;

  types = rec {
    bool = simple "boolean" isBool;
    int = simple "signed integer" isInt;
    str = simple "string" isString;
    lines = simple "strings concatenated with \"\\n\"" isString;
    package = simple "package" (v: isDerivation v || isStorePath v);
    path = simple "path" (v: isPath v || isDerivation v || (isString v && B.substring 0 1 v == "/"));
    attrs = simple "attribute set" isAttrs;
    port = simple "16 bit unsigned integer; between 0 and 65535 (both inclusive)" (v: isInt v && v >= 0 && v <= 65535);
    strMatching = re: simple "string matching the pattern ${re}" (v: isString v && match re v != null);
    enum = values: simple "one of ${concatStringsSep ", " (map B.toJSON values)}" (v: B.elem v values);
    ints = {
      between = lo: hi: simple "integer between ${toString lo} and ${toString hi} (both inclusive)" (v: isInt v && v >= lo && v <= hi);
      positive = simple "positive integer, meaning >0" (v: isInt v && v > 0);
    };
    nullOr = t: { name = "null or ${t.name}"; verify = path: v: if v == null then null else t.verify path v; };
    either = a: b: simple "${a.name} or ${b.name}" (v: (B.tryEval (B.deepSeq (a.verify "" v) true)).success || (B.tryEval (B.deepSeq (b.verify "" v) true)).success);
    listOf = t: { name = "list of ${t.name}"; verify = path: v: if isList v then B.genList (i: t.verify "${path}.[${toString i}]" (elemAt v i)) (length v) else fail path "list of ${t.name}" v; };
    attrsOf = t: { name = "attribute set of ${t.name}"; verify = path: v: if isAttrs v && !(isDerivation v) then B.mapAttrs (n: t.verify "${path}.${n}") v else fail path "attribute set of ${t.name}" v; };
    submodule = decls: { name = "submodule"; verify = path: v: if isAttrs v then applyOptions path decls v else fail path "submodule" v; };
    addCheck = t: name: check: { inherit (t) name; verify = path: v: let r = t.verify path v; in if check r then r else throw "A definition for option `${path}' is not of type `${t.name}' (${name}). Definition value: ${show v}"; };
  };

  # The options of `decls` given `values`: every defined value checked by its type, defaults for the
  # rest; an option nobody declared fails as in lib.evalModules.
  applyOptions = path: decls: values:
    let
      at = n: if path == "" then n else "${path}.${n}";
      unknown = filter (n: !(hasAttr n decls)) (attrNames values);
    in
    if unknown != [ ] then throw "The option `${at (elemAt unknown 0)}' does not exist."
    else B.mapAttrs (name: decl:
      if decl._type or null != "option" then applyOptions (at name) decl (values.${name} or { })
      else if hasAttr name values then decl.type.verify (at name) values.${name}
      else if decl ? default then decl.default
      else throw "The option `${at name}' is used but not defined.") decls;

  lib = {
    inherit types applyOptions;
    mkOption = decl: decl // { _type = "option"; };
    mkEnableOption = what: { _type = "option"; type = types.bool; default = false; description = "Whether to enable ${what}."; };
    # As in lib.modules: a conditional definition, resolved where definitions are taken in (the
    # harness's resolveIfs): when false the option gets no definition at all, not an empty one.
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    filterAttrs = pred: set: listToAttrs (map (name: { inherit name; value = set.${name}; }) (filter (name: pred name set.${name}) (attrNames set)));
    optionals = cond: list: if cond then list else [ ];
    optionalAttrs = cond: set: if cond then set else { };
    optionalString = cond: s: if cond then s else "";
    hasPrefix = prefix: s: B.substring 0 (B.stringLength prefix) s == prefix;
    removePrefix = prefix: s: if lib.hasPrefix prefix s then B.substring (B.stringLength prefix) (-1) s else s;
    escapeShellArgs = args: concatStringsSep " " (map (a: "'${replaceStrings [ "'" ] [ "'\\''" ] a}'") args);
    toInt = s: B.fromJSON s;
    last = list: elemAt list (length list - 1);
    splitString = sep: s: filter isString (split sep s);
    licenses.mit = { spdxId = "MIT"; };
    platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  };

  npmConfigHook = fakePackage "npm-config-hook";
  storePath = name: "/nix/store/${B.substring 0 32 (B.hashString "sha256" name)}-${name}";
  fakePackage = name: { type = "derivation"; inherit name; outPath = storePath name; };

  # importNpmLock (pkgs/build-support/node/import-npm-lock): fetches each lock entry that has a
  # `resolved` URL, by its `integrity`; an entry without one is simply not fetched, and the offline
  # `npm ci` in the sandbox then fails on it. So every installed entry must carry both.
  importNpmLock = args@{ npmRoot ? null, package ? B.fromJSON (B.readFile (npmRoot + "/package.json")), packageLock ? B.fromJSON (B.readFile (npmRoot + "/package-lock.json")), pname ? package.name, version ? package.version, fetcherOpts ? { } }:
    let
      installed = filter (p: p != "" && !(packageLock.packages.${p}.link or false)) (attrNames packageLock.packages);
      unfetchable = filter (p: let e = packageLock.packages.${p}; in !(e ? integrity) || match "https://.+" (e.resolved or "") == null) installed;
    in
    if packageLock.lockfileVersion or 0 < 2 then throw "importNpmLock: package-lock.json must be lockfileVersion 2 or 3"
    else if unfetchable != [ ] then throw "importNpmLock: ${toString (length unfetchable)} lock entries have no https `resolved` URL with an `integrity` (first: ${elemAt unfetchable 0})"
    else fakePackage "${pname}-${version}-npm-deps" // { passthru = { inherit args installed; lock = packageLock; }; };

  # buildNpmPackage (pkgs/build-support/node/build-npm-package): name or pname+version; src with
  # package.json and package-lock.json; npmDeps (or npmDepsHash for fetchNpmDeps, which we refuse:
  # that is the hand-maintained hash); importNpmLock's deps need importNpmLock.npmConfigHook; the
  # build hook runs `npm run build` unless dontNpmBuild; the install hook wraps package.json's bins.
  buildNpmPackage = args:
    let
      known = [ "pname" "version" "src" "npmDeps" "npmConfigHook" "dontNpmBuild" "npmBuildScript" "nodejs" "meta" "npmFlags" "npmInstallFlags" "makeCacheWritable" "passthru" ];
      unknown = filter (n: !(B.elem n known)) (attrNames args);
      pkgJson = B.fromJSON (B.readFile (args.src + "/package.json"));
      check = cond: message: if cond then true else throw "buildNpmPackage: ${message}";
      ok = all (x: x) [
        (check (unknown == [ ]) "unexpected arguments ${B.toJSON unknown}")
        (check (args ? pname && args ? version) "pname and version are required")
        (check (B.pathExists (args.src + "/package.json") && B.pathExists (args.src + "/package-lock.json")) "src must hold package.json and package-lock.json")
        (check (args ? npmDeps) "npmDeps is required (without it fetchNpmDeps needs npmDepsHash)")
        (check ((args.npmDeps.name or "") == "${args.pname}-${args.version}-npm-deps") "npmDeps must come from importNpmLock for this package")
        (check ((args.npmConfigHook or null) == npmConfigHook) "npmDeps from importNpmLock need npmConfigHook = importNpmLock.npmConfigHook")
        (check ((args.dontNpmBuild or false) || (pkgJson.scripts or { }) ? ${args.npmBuildScript or "build"}) "package.json has no build script: set dontNpmBuild")
        (check (isAttrs (pkgJson.bin or null) && all (b: B.pathExists (args.src + "/${b}")) (B.attrValues pkgJson.bin)) "package.json's bin entries must exist in src")
      ];
    in
    B.seq ok (fakePackage "${args.pname}-${args.version}" // {
      inherit (args) pname version;
      meta = args.meta or { };
      passthru.args = args;
      bins = attrNames pkgJson.bin;
    });

  pkgs = {
    inherit lib buildNpmPackage;
    importNpmLock = { inherit npmConfigHook; __functor = _self: importNpmLock; };
    nodejs = fakePackage "nodejs-20";
    coreutils = fakePackage "coreutils";
    findutils = fakePackage "findutils";
    gnugrep = fakePackage "gnugrep";
    gnused = fakePackage "gnused";
    systemd = fakePackage "systemd";
    nix = fakePackage "nix";
    callPackage = fn: overrides:
      let f = if isFunction fn then fn else import fn; in
      f (B.intersectAttrs (B.functionArgs f) pkgs // overrides);
  };
  isFunction = B.isFunction;
in
{
  inherit lib pkgs types storePath;
}
