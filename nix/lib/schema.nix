# The fleet's shape, field by field, mirroring publisher/fleet-schema.ts and the protocol schemas it
# uses (protocol/schemas/common.ts, selector.ts, release.ts): the same names, regexes, ranges, enums,
# defaults and messages. `fleet "" value` returns { errors; value; } with defaults applied.
let
  c = import ./check.nix;
  hostKey = import ./host-key.nix;
  time = import ./time.nix;
  inherit (c) str int enum list record strictObject keyedUnion taggedUnion nullable literal required optional withDefault;

  nameMessage = ''must be lowercase letters, digits and "-" (1-63 chars, not starting with "-")'';
  name = str { patterns = [ { regex = "[a-z0-9][a-z0-9-]{0,62}"; message = nameMessage; } ]; };
  storePathString = str {
    max = 211;
    patterns = [ { regex = "/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+"; message = "must be a Nix store path (/nix/store/<32-char hash>-<name>)"; } ];
  };
  # A derivation (a system's toplevel) stands for its output path, as `nix eval --json` prints it.
  storePath = path: v: storePathString path (if builtins.isAttrs v && v ? outPath then "${v}" else v);
  tag = str { patterns = [ { regex = "[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"; message = "tags use letters, digits, _ . : - (at most 64)"; } ]; };
  isoTimeRegex = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z";
  isoTime = str {
    patterns = [ { regex = isoTimeRegex; message = "must be an RFC 3339 UTC time with second precision (YYYY-MM-DDTHH:MM:SSZ)"; } ];
    # JavaScript reads a time back unchanged only in exactly this format, so a malformed one fails both.
    refine = s: if builtins.match isoTimeRegex s != null && time.isCalendarTime s then null else "is not a valid calendar time";
  };
  positiveInt = int { min = 1; };
  nonNegativeInt = int { min = 0; };
  system = str { patterns = [ { regex = "[a-z0-9_]+-[a-z0-9_]+"; message = "must be a Nix system like x86_64-linux"; } ]; };
  # JS regexes without "$" only constrain the start of the string.
  urlPrefix = prefixes: message: str {
    max = 2048;
    refine = s: if builtins.any (p: builtins.substring 0 (builtins.stringLength p) s == p) prefixes then null else message;
  };

  selector = path: v: keyedUnion {
    tags = list { min = 1; } tag;
    tagsAny = list { min = 1; } tag;
    hosts = list { min = 1; } name;
    channel = name;
    all = literal true;
    and = list { min = 1; } selector;
    not = selector;
  } path v;

  threshold = keyedUnion {
    count = nonNegativeInt;
    percent = int { min = 0; max = 100; };
  };

  probeName = str { min = 1; max = 64; };
  timeoutMs = int { min = 1; max = 600000; };
  probe = taggedUnion "kind" [ "systemd" "http" "tcp" "command" ] {
    systemd = strictObject { kind = required (literal "systemd"); name = required probeName; unit = required (nullable (str { max = 256; })); };
    http = strictObject {
      kind = required (literal "http");
      name = required probeName;
      url = required (urlPrefix [ "http://" "https://" ] "must be an http(s) URL");
      expectStatus = required (int { min = 100; max = 599; });
      timeoutMs = required timeoutMs;
    };
    tcp = strictObject {
      kind = required (literal "tcp");
      name = required probeName;
      host = required (str { min = 1; max = 253; });
      port = required (int { min = 1; max = 65535; });
      timeoutMs = required timeoutMs;
    };
    command = strictObject {
      kind = required (literal "command");
      name = required probeName;
      argv = required (list { min = 1; max = 64; } (str { max = 4096; }));
      expectExit = required (int { min = 0; max = 255; });
      timeoutMs = required timeoutMs;
    };
  };

  # Compliance (publisher/fleet-schema.ts, protocol/schemas/compliance.ts ComplianceId).
  complianceId = str { patterns = [ { regex = "[a-z0-9][a-z0-9._-]{0,62}"; message = ''must be lowercase letters, digits, ".", "_" or "-" (1-63 chars)''; } ]; };
  factPathMessage = "must be an attribute path like services.openssh.enable (dot-separated identifiers)";
  factPath = str { max = 256; patterns = [ { regex = "[A-Za-z_][A-Za-z0-9_'-]*([.][A-Za-z_][A-Za-z0-9_'-]*){0,31}"; message = factPathMessage; } ]; };
  # Any JSON value (what fromJSON or a NixOS option gives); strict JSON intake bounds it on the TypeScript side.
  jsonValue = _path: v: c.ok v;
  controlDescription = str { min = 1; max = 512; };
  staticExpect = keyedUnion {
    equals = jsonValue;
    oneOf = list { min = 1; max = 64; } jsonValue;
    present = literal true;
  };
  complianceControl = taggedUnion "kind" [ "static" "runtime" ] {
    static = strictObject {
      kind = required (literal "static");
      description = required controlDescription;
      fact = required factPath;
      expect = required staticExpect;
    };
    runtime = strictObject {
      kind = required (literal "runtime");
      description = required controlDescription;
      argv = required (list { min = 1; max = 64; } (str { max = 4096; }));
      expectExit = required (int { min = 0; max = 255; });
      timeoutMs = required timeoutMs;
    };
  };
  complianceFramework = strictObject {
    description = required controlDescription;
    controls = required (record complianceId complianceControl);
  };
  channelCompliance = strictObject {
    frameworks = required (list { min = 1; max = 32; } complianceId);
    mode = required (enum [ "enforce" "permissive" ]);
  };

  maintenanceWindow = strictObject {
    cron = required (str { min = 9; max = 128; });
    durationMinutes = required (int { min = 1; max = 7 * 24 * 60; });
  };

  hostFields = {
    system = required system;
    tags = withDefault [ ] (list { max = 64; } tag);
    channel = required name;
    target = required storePath;
    hostKey = required (str { max = 1024; refine = s: let r = hostKey.parse s; in if r.ok then null else r.reason; });
    machineId = optional (str { patterns = [ { regex = "[0-9a-f]{32}"; message = "must be 32 lowercase hex digits (/etc/machine-id)"; } ]; });
    facts = optional (record factPath jsonValue);
  };
  host = strictObject hostFields;

  # The defaults of publisher/fleet-schema.ts CHANNEL_DEFAULTS (reasons there), in parity.
  channelFields = {
    policy = required name;
    freshnessSeconds = withDefault (6 * 3600) positiveInt;
    signingIntervalSeconds = withDefault 3600 positiveInt;
    confirmDeadlineSeconds = withDefault 300 positiveInt;
    heartbeatSeconds = withDefault 300 positiveInt;
    offlineWindowSeconds = withDefault 900 positiveInt;
    maintenanceWindows = withDefault [ ] (list { max = 32; } maintenanceWindow);
    reboot = withDefault "never" (enum [ "never" "in-maintenance-window" "allowed" ]);
    compliance = optional channelCompliance;
  };
  channel = strictObject channelFields;

  percentMessage = "must be between 1 and 100";
  waveFields = {
    selector = optional selector;
    count = optional positiveInt;
    percent = optional (int { min = 1; max = 100; minMessage = percentMessage; maxMessage = percentMessage; });
    soakSeconds = required nonNegativeInt;
    failureThreshold = withDefault { count = 0; } threshold;
    offlineExcuseLimit = withDefault 0 nonNegativeInt;
  };
  wave = strictObject waveFields;

  policy = strictObject {
    strategy = required (enum [ "canary" "staged" "all-at-once" ]);
    waves = required (list { max = 64; } wave);
    onFailure = withDefault "halt" (enum [ "halt" "rollback-and-halt" ]);
    probes = withDefault [ ] (list { max = 32; } probe);
    healthyPassesRequired = withDefault 1 positiveInt;
    deferredHosts = withDefault "hold" (enum [ "hold" "excuse" ]);
  };

  edgeFields = { before = required name; after = required name; };
  edge = strictObject edgeFields;

  budgetFields = {
    id = required (str { patterns = [ { regex = "[a-z0-9][a-z0-9-]{0,62}"; message = ''must be lowercase letters, digits and "-" (1-63 chars)''; } ]; });
    selector = required selector;
    maxInFlight = optional nonNegativeInt;
    maxInFlightPct = optional (int { min = 0; max = 100; maxMessage = percentMessage; });
  };
  budget = strictObject budgetFields;

  reason = str { max = 512; };
  revokedHost = strictObject {
    host = required name;
    keyid = optional (str { patterns = [ { regex = "[0-9a-f]{64}"; message = "must be 64 lowercase hex digits"; } ]; });
    certSerial = optional (str { patterns = [ { regex = "[0-9A-F]{1,40}"; message = "must be an uppercase hex serial"; } ]; });
    reason = required reason;
    revokedAt = optional isoTime;
  };
  revokedClosureFields = { storePath = required storePath; reason = required reason; revokedAt = optional isoTime; };
  revokedClosure = strictObject revokedClosureFields;

  fleet = strictObject {
    fleet = required name;
    cacheUrl = optional (urlPrefix [ "http://" "https://" "file://" ] "must be an http(s):// or file:// URL");
    hosts = required (record name host);
    channels = required (record name channel);
    policies = required (record name policy);
    complianceFrameworks = optional (record complianceId complianceFramework);
    hostEdges = withDefault [ ] (list { max = 100000; } edge);
    channelEdges = withDefault [ ] (list { max = 1024; } edge);
    disruptionBudgets = withDefault [ ] (list { max = 1024; } budget);
    revoked = withDefault { hosts = [ ]; closures = [ ]; } (strictObject {
      hosts = withDefault [ ] (list { max = 100000; } revokedHost);
      closures = withDefault [ ] (list { max = 100000; } revokedClosure);
    });
  };
in
{
  inherit fleet selector name policy complianceId complianceFramework;
  # The field specs of each object, for validate.nix's per-field checks of a fleet that failed the schema.
  fields = { host = hostFields; channel = channelFields; wave = waveFields; edge = edgeFields; budget = budgetFields; revokedClosure = revokedClosureFields; };
}
