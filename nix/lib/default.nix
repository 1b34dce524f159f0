# The NixFleet Nix library (plain Nix, builtins only: it evaluates without nixpkgs and offline).
let
  fleet = import ./mkFleet.nix;
  waves = import ./waves.nix;
in
{
  inherit (fleet) mkFleet fleetViolations;
  mkHost = import ./mkHost.nix;
  # How waves and budgets resolve for a fleet mkFleet accepted: { channels.<name> = { policy; strategy;
  # waves = [ { index; membership; soakSeconds; failureThreshold; offlineExcuseLimit; hosts; } ];
  # unassigned; }; budgets = [ { id; selector; maxInFlight; maxInFlightPct; hosts; } ]; }, the same
  # resolution `nixfleet validate` prints (without rollout ids, which hash JCS bytes).
  resolveFleet = f: waves.resolveFleet (fleet.mkFleet f);
}
