# mkHost: one host entry of the fleet. The target is either given as a store path string, or taken
# from a NixOS configuration (anything whose config.system.build.toplevel is the system derivation, as
# nixpkgs.lib.nixosSystem returns). mkFleet checks every field; mkHost only shapes the entry, so that
# a missing or doubled target is reported here, where it was written.
{ system
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
    else if nixosConfiguration != null then "${toplevelOf nixosConfiguration}"
    else throw "mkHost: give target (a /nix/store path) or nixosConfiguration";
in
{
  inherit system channel hostKey tags;
  target = resolvedTarget;
}
# The fleet JSON has no null machine id: an unknown one is simply absent.
// (if machineId == null then { } else { inherit machineId; })
