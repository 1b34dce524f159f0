# NixOS module: the NixFleet agent on a host. A systemd timer runs one agent cycle
# (`nixfleet agent --config /etc/nixfleet/agent.json --once`); the config file is generated from the
# options below, whose names are those of the agent's config schema (agent/config.ts), so the file is
# exactly what `nixfleet agent` reads. Unset optional settings are left out: the agent's defaults apply.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.services.nixfleet-agent;
  configFile = "nixfleet/agent.json";

  # agent/config.ts's HostName (protocol/schemas/common.ts): a NixOS host name may be "Web_01", or ""
  # when DHCP supplies it, so the default from networking.hostName is checked by an assertion that
  # says what to do, not by the option's type.
  hostNamePattern = "[a-z0-9][a-z0-9-]{0,62}";
  # A systemd time span ("60s", "5min", "1h 30min", a bare number of seconds): checked here, because
  # systemd only warns about an unparsable timer value and then never runs the timer.
  timeSpanUnits = "us|usec|ms|msec|s|sec|second|seconds|m|min|minute|minutes|h|hr|hour|hours|d|day|days|w|week|weeks|M|month|months|y|year|years";
  timeSpan = types.strMatching " *([0-9]+(\\.[0-9]+)? *(${timeSpanUnits})? *)+";

  # The built-in nix activator (agent/activators/nix.ts): realise from the cache, set the system
  # profile, switch-to-configuration; reboot when the kernel/initrd/systemd changed.
  nixActivator = {
    kind = "nix";
    profile = "/nix/var/nix/profiles/system";
    currentSystem = "/run/current-system";
    nixBinDir = "${config.nix.package}/bin";
    bootIdFile = "/proc/sys/kernel/random/boot_id";
    rebootCommand = [ "${config.systemd.package}/bin/systemctl" "reboot" ];
  };

  stateDirUnderVarLib = lib.hasPrefix "/var/lib/" cfg.stateDir;

  # metricsTextfileDir (node_exporter's --collector.textfile.directory) names the file; metricsFile wins.
  metricsFile = if cfg.metricsFile != null then cfg.metricsFile
    else if cfg.metricsTextfileDir != null then "${cfg.metricsTextfileDir}/nixfleet-agent.prom" else null;
  optionalSettings = lib.filterAttrs (_: v: v != null) {
    inherit (cfg) schedule clockSkewSeconds requestTimeoutMs retries probeIntervalMs splayMs;
    inherit metricsFile;
    inherit (cfg) enrolmentTokenFile;
  };
  agentConfig = {
    inherit (cfg) controlPlaneUrl ackPath caFile certFile keyFile host hostKeyFile stateDir quarantineHours;
    inherit (cfg) activator;
    # A path value (./root.json) becomes a store path, so the root travels with the closure even to a
    # host that gets it from a binary cache; a string names a file on the host.
    trustRootFile = "${cfg.trustRootFile}";
  } // optionalSettings
    # Left out when empty, so a one-box config file stays exactly what it was.
    // lib.optionalAttrs (cfg.otherControlPlaneUrls != [ ]) { inherit (cfg) otherControlPlaneUrls; };

  nullOrInt = min: max: description: mkOption { type = types.nullOr (types.ints.between min max); default = null; inherit description; };
in
{
  options.services.nixfleet-agent = {
    enable = mkEnableOption "the NixFleet agent (verify the signed release, converge this host, confirm or roll back)";
    package = mkOption {
      type = types.package;
      default = pkgs.nixfleet or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.nixfleet (nixfleet's overlays.default), else nix/package.nix built with pkgs";
      description = "The nixfleet package (provides bin/nixfleet).";
    };
    controlPlaneUrl = mkOption { type = types.strMatching "https://.*"; description = "Base URL of the published tree, e.g. https://cp.example:8443/."; };
    otherControlPlaneUrls = mkOption {
      type = types.listOf (types.strMatching "https://.*");
      default = [ ];
      example = [ "https://cp2.example:8443/" ];
      description = "Further control plane boxes serving the same tree (each with its own ack endpoint), tried in this order after controlPlaneUrl; the agent sticks to the box that answered last and moves on when one fails or serves an older tree.";
    };
    ackPath = mkOption { type = types.strMatching "[a-z0-9][a-z0-9/_-]*"; default = "acks"; description = "Tree-relative path of the ack endpoint (POST)."; };
    caFile = mkOption { type = types.str; description = "The fleet CA certificate (PEM) that signed the control plane's server certificate."; };
    certFile = mkOption { type = types.str; description = "This host's client certificate (PEM, CN = host name)."; };
    keyFile = mkOption { type = types.str; description = "This host's client certificate key (PEM). Keep it out of the Nix store."; };
    host = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = "This host's name in the fleet (lowercase letters, digits and '-', 1-63 characters).";
    };
    enrolmentTokenFile = mkOption {
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      description = "A one-time enrolment token (`nixfleet enrol token`) as an absolute path on the host, outside the Nix store (it is a secret until used): with no certFile yet, the agent enrols with it on first start and from then on renews its certificate itself (at 2/3 of its lifetime). null = the certificate is installed by hand.";
    };
    hostKeyFile = mkOption { type = types.str; description = "nixfleet private key file whose public half is this host's hostKey in the fleet (signs acks)."; };
    trustRootFile = mkOption { type = types.path; description = "The pinned trust root (a signed root/<n>.json) the host starts from; a path (./root.json) is copied into the store."; };
    stateDir = mkOption { type = types.str; default = "/var/lib/nixfleet-agent"; description = "Agent state (pending activation, quarantine, highest version seen, ack journal)."; };
    metricsFile = mkOption { type = types.nullOr (types.strMatching ".+[.]prom"); default = null; description = "Prometheus textfile (*.prom) the agent rewrites atomically after every run (agent/metrics.ts)."; };
    metricsTextfileDir = mkOption { type = types.nullOr types.str; default = null; description = "node_exporter's textfile collector directory (e.g. services.prometheus.exporters.node with --collector.textfile.directory): the agent writes nixfleet-agent.prom there."; };
    quarantineHours = mkOption { type = types.ints.between 0 8760; default = 24; description = "How long a closure that failed or was rolled back is refused."; };
    activator = mkOption {
      type = types.attrs;
      default = nixActivator;
      defaultText = lib.literalExpression ''
        { kind = "nix"; profile = "/nix/var/nix/profiles/system"; currentSystem = "/run/current-system";
          nixBinDir = "''${config.nix.package}/bin"; bootIdFile = "/proc/sys/kernel/random/boot_id";
          rebootCommand = [ "''${config.systemd.package}/bin/systemctl" "reboot" ]; }
      '';
      description = "The agent's activator config (agent/activators). The default is the built-in nix activator for this NixOS system.";
    };
    schedule = mkOption { type = types.nullOr types.str; default = null; description = "Cron schedule of the daemon mode (unused by the timer)."; };
    clockSkewSeconds = nullOrInt 0 86400 "Tolerated clock skew (agent default 60).";
    requestTimeoutMs = nullOrInt 100 600000 "Timeout of each request to the control plane (agent default 10000).";
    retries = nullOrInt 0 10 "Retries of a failed request (agent default 3).";
    probeIntervalMs = nullOrInt 10 600000 "Pause between probe rounds in the confirm window (agent default 2000).";
    splayMs = nullOrInt 0 3600000 "Random delay before a daemon-mode cycle (agent default 0).";
    interval = mkOption { type = timeSpan; default = "60s"; description = "How often the timer runs a cycle (systemd time span)."; };
    randomizedDelay = mkOption { type = timeSpan; default = "15s"; description = "Random delay per timer tick, so a fleet does not poll in lockstep."; };
  };

  config = mkIf cfg.enable {
    assertions = [{
      assertion = builtins.match hostNamePattern cfg.host != null;
      message = "services.nixfleet-agent.host is ${builtins.toJSON cfg.host}${lib.optionalString (cfg.host == config.networking.hostName) " (from networking.hostName)"}, which is not a fleet host name (lowercase letters, digits and '-', 1-63 characters, not starting with '-'): set services.nixfleet-agent.host to this host's name in the fleet.";
    }];

    # StateDirectory= creates only directories under /var/lib; elsewhere tmpfiles does.
    systemd.tmpfiles.rules = lib.optionals (!stateDirUnderVarLib) [ "d ${cfg.stateDir} 0700 root root -" ];

    environment.etc.${configFile} = { text = builtins.toJSON agentConfig; mode = "0600"; };

    # Mirrors agent/systemd/nixfleet-agent.{service,timer}.
    systemd.services.nixfleet-agent = {
      description = "NixFleet agent: verify the signed release and converge this host";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # coreutils is on every NixOS service's PATH already.
      path = [ config.nix.package ];
      restartIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${cfg.package}/bin/nixfleet agent --config /etc/${configFile} --once";
        User = "root";
      } // lib.optionalAttrs stateDirUnderVarLib {
        StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
        StateDirectoryMode = "0700";
      } // {
        # V8's compiled code of the CLI between runs (CACHE_DIRECTORY; cli/code-cache.ts).
        CacheDirectory = "nixfleet-agent";
        CacheDirectoryMode = "0700";
        UMask = "0077";
        TimeoutStartSec = "30min";
        KillMode = "mixed";
        Nice = 5;
        ProtectHome = "read-only";
        PrivateTmp = true;
        SyslogIdentifier = "nixfleet-agent";
      };
    };
    systemd.timers.nixfleet-agent = {
      description = "Run the NixFleet agent periodically";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "30s";
        OnUnitActiveSec = cfg.interval;
        RandomizedDelaySec = cfg.randomizedDelay;
        AccuracySec = "1s";
        # No Persistent=: it applies to OnCalendar= only; OnBootSec= covers the time the host was down.
        Unit = "nixfleet-agent.service";
      };
    };
  };
}
