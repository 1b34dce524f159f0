# mkHost: one host entry of the fleet. The target is either given as a store path string, or taken
# from a NixOS configuration (anything whose config.system.build.toplevel is the system derivation, as
# nixpkgs.lib.nixosSystem returns), which also gives `system` (config.nixpkgs.hostPlatform.system, or
# the older config.nixpkgs.system). mkFleet checks every field; mkHost only shapes the entry, so that
# a missing, doubled or contradicting field is reported here, where it was written.
# Facts (what static compliance controls read): with a nixosConfiguration they are read from its
# `config` by mkFleet, for exactly the attribute paths the fleet's controls name (an option that is not
# defined, or fails to evaluate, is left out: "not set"); without one, `facts` may state them.
{ system ? null
, channel
, hostKey
, tags ? [ ]
, machineId ? null
, target ? null
, nixosConfiguration ? null
, facts ? null
}:
let
  toplevelOf = cfg:
    if cfg ? config.system.build.toplevel then cfg.config.system.build.toplevel
    else throw "mkHost: nixosConfiguration has no config.system.build.toplevel (pass the result of nixosSystem, or `target`)";
  resolvedTarget =
    if target != null && nixosConfiguration != null then throw "mkHost: give either target or nixosConfiguration, not both"
    else if target != null then toString target
    else if nixosConfiguration != null then (toplevelOf nixosConfiguration).outPath
    else throw "mkHost: give target (a /nix/store path) or nixosConfiguration";
  configuredSystem = nixosConfiguration.config.nixpkgs.hostPlatform.system or nixosConfiguration.config.nixpkgs.system or null;
  resolvedSystem =
    if nixosConfiguration == null || configuredSystem == null then
      (if system != null then system else throw "mkHost: give system (e.g. \"x86_64-linux\") or a nixosConfiguration that sets nixpkgs.hostPlatform")
    else if system != null && system != configuredSystem then throw "mkHost: system is ${builtins.toJSON system} but the nixosConfiguration is built for ${builtins.toJSON configuredSystem}"
    else configuredSystem;
  # lib.attrByPath with builtins only (this library evaluates without nixpkgs): null when not defined.
  attrAt = path: builtins.foldl' (r: k: if r != null && builtins.isAttrs r.value && r.value ? ${k} then { value = r.value.${k}; } else null)
    { value = nixosConfiguration.config; } (builtins.filter builtins.isString (builtins.split "[.]" path));
  # Forced here so that an option that fails to evaluate counts as not set; a derivation stands for its path.
  forced = x: if builtins.isAttrs x && x ? outPath then x.outPath else builtins.deepSeq x x;
  readFacts = paths: builtins.listToAttrs (builtins.concatMap (path:
    let r = attrAt path; v = builtins.tryEval (forced r.value); in
    if r != null && v.success then [ { name = path; value = v.value; } ] else [ ]) paths);
  resolvedFacts =
    if facts != null && nixosConfiguration != null then throw "mkHost: give either facts or nixosConfiguration (facts are read from it), not both"
    else if nixosConfiguration != null then {
      # mkFleet calls this with the fact paths of the fleet's static controls; printed alone, it says so.
      __nixfleetFactsOf = readFacts;
      __toString = _: "(read from the nixosConfiguration by mkFleet)";
    }
    else facts;
in
{
  inherit channel hostKey tags;
  system = resolvedSystem;
  target = resolvedTarget;
}
# The fleet JSON has no null machine id: an unknown one is simply absent.
// (if machineId == null then { } else { inherit machineId; })
// (if resolvedFacts == null then { } else { facts = resolvedFacts; })
