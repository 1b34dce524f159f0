# mkFleet: a fleet written in Nix (the same shape as the fleet JSON of publisher/fleet-schema.ts) ->
# the same fleet with defaults applied, ready for `nix eval --json` and `nixfleet publish`. Every field
# is type-checked and every invariant of publisher/validate.ts is checked; all violations are reported
# together in one evaluation error, each as "path: message" with the TypeScript validator's text.
# Like the TypeScript side, the cross-checks run on the well-typed parts even when some shapes are
# wrong; only the checks that need resolved waves wait for a clean schema.
let
  schema = import ./schema.nix;
  validate = import ./validate.nix;

  violations = input:
    let
      shaped = schema.fleet "" input;
      crossErrors = validate.crossCheck input;
    in
    if shaped.errors != [ ] then { errors = shaped.errors ++ crossErrors; value = null; }
    else { errors = crossErrors ++ validate.resolutionCheck shaped.value; inherit (shaped) value; };

  report = errors:
    let n = builtins.length errors; in
    "mkFleet: the fleet is invalid (${toString n} violation${if n == 1 then "" else "s"}):\n"
    + builtins.concatStringsSep "\n" (map (e: "  - ${e}") errors);
in
{
  # The checked fleet, or an evaluation error listing every violation.
  mkFleet = input:
    let r = violations input; in
    if r.errors == [ ] then r.value else throw (report r.errors);

  # The violations as a list of strings ([] = valid), for tests and tools that want them as data.
  fleetViolations = input: (violations input).errors;
}
