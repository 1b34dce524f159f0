# Evaluates one of our NixOS modules without nixpkgs, as strictly as lib.evalModules would for what
# the modules touch: the module's own options and the NixOS options it sets (systemd units,
# environment.etc, users, nginx, firewall, tmpfiles, assertions) are declared here with NixOS's types,
# so an unknown option, a misspelt attribute or a wrong type fails with NixOS's message, and failed
# assertions fail as they do when the system is built. Beyond NixOS, it refuses two things NixOS
# accepts silently but that do nothing: Persistent= without OnCalendar=, and a service PATH entry
# NixOS already puts on every service's PATH.
# Not the module system: no priorities or merging of one option from several modules (one module is
# evaluated; `config` given to it holds the settings plus the few NixOS values it reads); mkIf is
# resolved as NixOS resolves it (a false one defines nothing).
{ module, service, settings, hostName ? "web-01" }:
let
  B = builtins;
  standIn = import ./stand-in-pkgs.nix;
  inherit (standIn) lib pkgs;
  inherit (lib) types mkOption applyOptions;

  opt = type: default: mkOption { inherit type default; };
  # nixos/lib/systemd-lib.nix: unitNameType, and the values a unit section may hold (unitOption).
  unitName = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  unitNames = opt (types.listOf unitName) [ ];
  unitScalar = v: B.isBool v || B.isInt v || B.isString v || B.isPath v || (B.isAttrs v && v ? outPath);
  unitOption = { name = "systemd option"; verify = path: v: if unitScalar v || (B.isList v && B.all unitScalar v) then v else throw "A definition for option `${path}' is not of type `systemd option'. Definition value: ${B.toJSON v}"; };
  section = opt (types.attrsOf unitOption) { };
  # nixos/lib/systemd-unit-options.nix checkService.
  serviceSection = opt (types.addCheck (types.attrsOf unitOption) "Type and Restart must be values systemd knows" (c:
    B.elem (c.Type or "simple") [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ]
    && B.elem (c.Restart or "no") [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "always" ])) { };

  unitCommon = {
    enable = opt types.bool true;
    description = opt types.str "";
    documentation = opt (types.listOf types.str) [ ];
    requires = unitNames; wants = unitNames; after = unitNames; before = unitNames; bindsTo = unitNames;
    partOf = unitNames; conflicts = unitNames; requisite = unitNames; wantedBy = unitNames; requiredBy = unitNames;
    unitConfig = section;
    restartTriggers = opt (types.listOf types.str) [ ];
  };
  serviceOptions = unitCommon // {
    serviceConfig = serviceSection;
    environment = opt (types.attrsOf types.str) { };
    path = opt (types.listOf (types.either types.package types.str)) [ ];
    restartIfChanged = opt types.bool true;
    reloadIfChanged = opt types.bool false;
    stopIfChanged = opt types.bool true;
    startAt = opt (types.listOf types.str) [ ];
    script = opt types.lines ""; preStart = opt types.lines ""; postStart = opt types.lines "";
  };
  etcOptions = {
    enable = opt types.bool true;
    target = opt types.str "";
    text = opt (types.nullOr types.lines) null;
    source = opt types.path "/dev/null";
    mode = opt types.str "symlink";
    uid = opt types.int 0; gid = opt types.int 0;
    user = opt types.str "+0"; group = opt types.str "+0";
  };
  userOptions = {
    isSystemUser = opt types.bool false; isNormalUser = opt types.bool false;
    group = opt types.str ""; extraGroups = opt (types.listOf types.str) [ ];
    home = opt types.str "/var/empty"; createHome = opt types.bool false;
    description = opt types.str ""; uid = opt (types.nullOr types.int) null;
  };

  nixosOptions = {
    assertions = opt (types.listOf (types.submodule { assertion = mkOption { type = types.bool; }; message = mkOption { type = types.str; }; })) [ ];
    warnings = opt (types.listOf types.str) [ ];
    systemd = {
      package = opt types.package pkgs.systemd;
      services = opt (types.attrsOf (types.submodule serviceOptions)) { };
      user.services = opt (types.attrsOf (types.submodule serviceOptions)) { };
      timers = opt (types.attrsOf (types.submodule (unitCommon // { timerConfig = section; }))) { };
      paths = opt (types.attrsOf (types.submodule (unitCommon // { pathConfig = section; }))) { };
      tmpfiles.rules = opt (types.listOf types.str) [ ];
    };
    environment.etc = opt (types.attrsOf (types.submodule etcOptions)) { };
    users = {
      users = opt (types.attrsOf (types.submodule userOptions)) { };
      groups = opt (types.attrsOf (types.submodule { gid = opt (types.nullOr types.int) null; members = opt (types.listOf types.str) [ ]; })) { };
    };
    services.nginx = {
      enable = opt types.bool false;
      user = opt types.str "nginx";
      group = opt types.str "nginx";
      appendHttpConfig = opt types.lines "";
    };
    networking = {
      hostName = opt types.str "nixos";
      firewall.allowedTCPPorts = opt (types.listOf types.port) [ ];
    };
    nix.package = opt types.package pkgs.nix;
  };

  evaluated = module { inherit lib pkgs config; };
  declared = nixosOptions // { services = nixosOptions.services // evaluated.options.services; };

  # What the module reads: its own options from `settings`, and NixOS values (defaults + host name).
  base = applyOptions "" nixosOptions { networking.hostName = hostName; };
  config = base // { services = base.services // { ${service} = applyOptions "services.${service}" evaluated.options.services.${service} settings; }; };

  # mkIf resolved as lib.modules pushes it down: a false condition removes the definition (an attribute
  # under it is then absent, as a disabled unit is in NixOS), a true one gives its content.
  isIf = v: B.isAttrs v && (v._type or null) == "if";
  resolveIfs = v:
    if isIf v then (if v.condition then resolveIfs v.content else { })
    else if B.isAttrs v && !(v ? outPath) && !(v ? _type) then
      B.mapAttrs (_: resolveIfs) (lib.filterAttrs (_: x: !(isIf x) || x.condition) v)
    else v;

  # Definitions from the settings and from the module, merged attribute-wise (one definition per option).
  merge = path: a: b: B.zipAttrsWith (n: vs:
    if B.length vs == 1 then B.head vs
    else if B.all (v: B.isAttrs v && !(v ? outPath) && !(v ? _type)) vs then merge "${path}${n}." (B.elemAt vs 0) (B.elemAt vs 1)
    else throw "The option `${path}${n}' is defined twice (this harness evaluates one module)") [ a b ];
  definitions = merge "" { networking.hostName = hostName; services.${service} = settings; } (resolveIfs evaluated.config);
  checked = applyOptions "" declared definitions;

  failedAssertions = map (a: a.message) (B.filter (a: !a.assertion) checked.assertions);

  # Accepted by NixOS, ignored by systemd or redundant: refused here so a test notices.
  nixosServicePath = [ pkgs.coreutils pkgs.findutils pkgs.gnugrep pkgs.gnused pkgs.systemd ];
  lint = B.concatLists (B.attrValues (B.mapAttrs (n: t: lib.optionals (t.timerConfig ? Persistent && !(t.timerConfig ? OnCalendar))
      [ "systemd.timers.${n}.timerConfig.Persistent has no effect without OnCalendar=" ]) checked.systemd.timers))
    ++ B.concatLists (B.attrValues (B.mapAttrs (n: s: map (p: "systemd.services.${n}.path: ${p.name} is on every NixOS service's PATH already")
      (B.filter (p: B.elem p nixosServicePath) s.path)) checked.systemd.services));
in
{
  config =
    if failedAssertions != [ ] then throw "\nFailed assertions:\n${B.concatStringsSep "\n" (map (m: "- ${m}") failedAssertions)}"
    else if lint != [ ] then throw "\n${B.concatStringsSep "\n" lint}"
    else checked;
  optionNames = B.attrNames evaluated.options.services.${service};
}
