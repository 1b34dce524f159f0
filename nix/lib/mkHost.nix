# mkHost: one host entry of the fleet. The target is either given as a store path string, or taken
# from a NixOS configuration (anything whose config.system.build.toplevel is the system derivation, as
# nixpkgs.lib.nixosSystem returns), which also gives `system` (config.nixpkgs.hostPlatform.system, or
# the older config.nixpkgs.system). mkFleet checks every field; mkHost only shapes the entry, so that
# a missing, doubled or contradicting field is reported here, where it was written.
{ system ? null
, channel
, hostKey
, tags ? [ ]
, machineId ? null
, target ? null
, nixosConfiguration ? null
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
in
{
  inherit channel hostKey tags;
  system = resolvedSystem;
  target = resolvedTarget;
}
# The fleet JSON has no null machine id: an unknown one is simply absent.
// (if machineId == null then { } else { inherit machineId; })
