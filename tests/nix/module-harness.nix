# Evaluates one of our NixOS modules without nixpkgs: a small stand-in for the parts of nixpkgs' lib
# and pkgs the modules use, option values checked against the declared types, defaults applied. It is
# not the NixOS module system (no merging, no priorities); it exists so tests can read what a module
# generates (the agent's config file, the ExecStart command lines) and feed it to the real programs.
{ module, service, settings, hostName ? "web-01" }:
let
  inherit (builtins) attrNames listToAttrs filter isString isInt isAttrs isBool isPath match concatStringsSep replaceStrings split elemAt length hasAttr typeOf;

  typeTag = name: check: { _type = "option-type"; inherit name check; };
  types = {
    bool = typeTag "bool" isBool;
    str = typeTag "str" isString;
    package = typeTag "package" (v: isString v || isAttrs v);
    path = typeTag "path" (v: isPath v || (isString v && builtins.substring 0 1 v == "/"));
    attrs = typeTag "attrs" isAttrs;
    strMatching = re: typeTag "string matching ${re}" (v: isString v && match re v != null);
    nullOr = t: typeTag "null or ${t.name}" (v: v == null || t.check v);
    ints = {
      between = lo: hi: typeTag "integer between ${toString lo} and ${toString hi}" (v: isInt v && v >= lo && v <= hi);
      positive = typeTag "positive integer" (v: isInt v && v > 0);
    };
  };

  lib = {
    inherit types;
    mkOption = decl: decl // { _type = "option"; };
    mkEnableOption = what: { _type = "option"; type = types.bool; default = false; description = "Whether to enable ${what}."; };
    mkIf = cond: value: if cond then value else { };
    filterAttrs = pred: set: listToAttrs (map (name: { inherit name; value = set.${name}; }) (filter (name: pred name set.${name}) (attrNames set)));
    optionals = cond: list: if cond then list else [ ];
    escapeShellArgs = args: concatStringsSep " " (map (a: "'${replaceStrings [ "'" ] [ "'\\''" ] a}'") args);
    toInt = s: builtins.fromJSON s;
    last = list: elemAt list (length list - 1);
    splitString = sep: s: filter isString (split sep s);
  };

  pkgs = {
    # Real files in the store, so tests can read (and syntax-check) the generated scripts.
    writeShellScript = name: text: builtins.toFile name "#!/bin/sh\n${text}";
    coreutils = "/nix/store/00000000000000000000000000000000-coreutils";
  };

  applyOptions = path: decls: values:
    let
      unknown = filter (n: !(hasAttr n decls)) (attrNames values);
    in
    if unknown != [ ] then throw "unknown option ${path}.${elemAt unknown 0}"
    else listToAttrs (map (name:
      let decl = decls.${name}; p = "${path}.${name}"; in {
        inherit name;
        value =
          if decl._type or null != "option" then applyOptions p decl (values.${name} or { })
          else if hasAttr name values then
            (if decl.type.check values.${name} then values.${name}
             else throw "option ${p}: ${builtins.toJSON values.${name}} is not a ${decl.type.name}")
          else if decl ? default then decl.default
          else throw "option ${p} is used but not defined";
      }) (attrNames decls));

  evaluated = module { inherit lib pkgs config; };
  config = {
    services.${service} = applyOptions "services.${service}" evaluated.options.services.${service} settings;
    services.nginx.group = "nginx";
    networking.hostName = hostName;
    nix.package = "/nix/store/00000000000000000000000000000000-nix";
  };
in
{
  inherit (evaluated) config;
  optionNames = attrNames evaluated.options.services.${service};
}
