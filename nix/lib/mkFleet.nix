# mkFleet: a fleet written in Nix (the same shape as the fleet JSON of publisher/fleet-schema.ts) ->
# the same fleet with defaults applied, ready for `nix eval --json` and `nixfleet publish`. Every field
# is type-checked and every invariant of publisher/validate.ts is checked; all violations are reported
# together in one evaluation error, each as "path: message" with the TypeScript validator's text.
# Like the TypeScript side, the cross-checks run on the well-typed parts even when some shapes are
# wrong; only the checks that need resolved waves wait for a clean schema.
let
  schema = import ./schema.nix;
  validate = import ./validate.nix;

  # Every fact path a static control names (of any framework that is shaped enough to read).
  factPaths = input:
    let
      frameworks = if builtins.isAttrs input && builtins.isAttrs (input.complianceFrameworks or null) then builtins.attrValues input.complianceFrameworks else [ ];
      controls = builtins.concatLists (map (f: if builtins.isAttrs f && builtins.isAttrs (f.controls or null) then builtins.attrValues f.controls else [ ]) frameworks);
    in
    builtins.filter builtins.isString (map (c: if builtins.isAttrs c && (c.kind or null) == "static" then c.fact or null else null) controls);

  # mkHost given a nixosConfiguration leaves its facts to be read here, once the fleet's controls say
  # which options they name: only those are evaluated.
  withFacts = input:
    let
      paths = factPaths input;
      resolve = h: if builtins.isAttrs h && builtins.isAttrs (h.facts or null) && h.facts ? __nixfleetFactsOf then h // { facts = h.facts.__nixfleetFactsOf paths; } else h;
    in
    if builtins.isAttrs input && builtins.isAttrs (input.hosts or null) then input // { hosts = builtins.mapAttrs (_: resolve) input.hosts; } else input;

  violations = raw:
    let
      input = withFacts raw;
      shaped = schema.fleet "" input;
      crossErrors = validate.crossCheck input;
      resolutionErrors = validate.resolutionCheck shaped.value;
    in
    if shaped.errors != [ ] then { errors = shaped.errors ++ crossErrors; value = null; }
    else if crossErrors ++ resolutionErrors != [ ] then { errors = crossErrors ++ resolutionErrors; value = null; }
    else { errors = validate.checkStaticControls shaped.value; inherit (shaped) value; };

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
