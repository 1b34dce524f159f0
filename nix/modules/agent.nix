# NixOS module: the NixFleet agent on a host. A systemd timer runs one agent cycle
# (`nixfleet agent --config /etc/nixfleet/agent.json --once`); the config file is generated from the
# options below, whose names are those of the agent's config schema (agent/config.ts), so the file is
# exactly what `nixfleet agent` reads. Unset optional settings are left out: the agent's defaults apply.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.services.nixfleet-agent;
  configFile = "nixfleet/agent.json";

  # Activation the way `nixos-rebuild switch` does it; parameters arrive in environment variables
  # (agent/activators/command.ts), never spliced into a command line.
  profile = "/nix/var/nix/profiles/system";
  nixosActivator = {
    kind = "command";
    switch = [ "${pkgs.writeShellScript "nixfleet-switch" ''
      set -eu
      # Fetch the closure from the binary cache; Nix checks the narinfo signatures (trusted-public-keys).
      nix-store --realise "$NIXFLEET_TARGET" >/dev/null
      nix-env --profile ${profile} --set "$NIXFLEET_TARGET"
      exec "$NIXFLEET_TARGET/bin/switch-to-configuration" switch
    ''}" ];
    rollback = [ "${pkgs.writeShellScript "nixfleet-rollback" ''
      set -eu
      # By generation number, never "one step back": rerunning it is harmless.
      nix-env --profile ${profile} --switch-generation "$NIXFLEET_GENERATION"
      exec "$NIXFLEET_GENERATION_PATH/bin/switch-to-configuration" switch
    ''}" ];
    current = [ "${pkgs.writeShellScript "nixfleet-current" ''
      set -eu
      link=$(readlink ${profile})
      number=''${link#system-}
      echo "''${number%-link} $(readlink -f ${profile})"
    ''}" ];
    inhibitors = [ "${pkgs.writeShellScript "nixfleet-inhibitors" ''
      set -eu
      # A new kernel, initrd, module set or systemd needs a reboot: the agent then defers (boot, not switch).
      for part in kernel initrd kernel-modules systemd; do
        if [ "$(readlink -f /run/current-system/$part)" != "$(readlink -f "$NIXFLEET_TARGET/$part")" ]; then echo "$part"; fi
      done
    ''}" ];
  };

  optionalSettings = lib.filterAttrs (_: v: v != null) {
    inherit (cfg) schedule clockSkewSeconds requestTimeoutMs retries probeIntervalMs splayMs;
  };
  agentConfig = {
    inherit (cfg) controlPlaneUrl ackPath caFile certFile keyFile host hostKeyFile trustRootFile stateDir quarantineHours;
    activator = if cfg.activator == null then nixosActivator else cfg.activator;
  } // optionalSettings;

  nullOrInt = min: max: description: mkOption { type = types.nullOr (types.ints.between min max); default = null; inherit description; };
in
{
  options.services.nixfleet-agent = {
    enable = mkEnableOption "the NixFleet agent (verify the signed release, converge this host, confirm or roll back)";
    package = mkOption { type = types.package; description = "The nixfleet package (provides bin/nixfleet)."; };
    controlPlaneUrl = mkOption { type = types.strMatching "https://.*"; description = "Base URL of the published tree, e.g. https://cp.example:8443/."; };
    ackPath = mkOption { type = types.strMatching "[a-z0-9][a-z0-9/_-]*"; default = "acks"; description = "Tree-relative path of the ack endpoint (POST)."; };
    caFile = mkOption { type = types.str; description = "The fleet CA certificate (PEM) that signed the control plane's server certificate."; };
    certFile = mkOption { type = types.str; description = "This host's client certificate (PEM, CN = host name)."; };
    keyFile = mkOption { type = types.str; description = "This host's client certificate key (PEM). Keep it out of the Nix store."; };
    host = mkOption { type = types.strMatching "[a-z0-9][a-z0-9-]{0,62}"; default = config.networking.hostName; description = "This host's name in the fleet."; };
    hostKeyFile = mkOption { type = types.str; description = "nixfleet private key file whose public half is this host's hostKey in the fleet (signs acks)."; };
    trustRootFile = mkOption { type = types.str; description = "The pinned trust root (a signed root/<n>.json) the host starts from."; };
    stateDir = mkOption { type = types.str; default = "/var/lib/nixfleet-agent"; description = "Agent state (pending activation, quarantine, highest version seen, ack journal)."; };
    quarantineHours = mkOption { type = types.ints.between 0 8760; default = 24; description = "How long a closure that failed or was rolled back is refused."; };
    activator = mkOption {
      type = types.nullOr types.attrs;
      default = null;
      description = ''
        The agent's activator config (agent/activators). null: a command activator doing what
        `nixos-rebuild switch` does (nix-store --realise, nix-env --set, switch-to-configuration), rolling
        back by generation number, and reporting kernel/initrd/module/systemd changes as inhibitors.
      '';
    };
    schedule = mkOption { type = types.nullOr types.str; default = null; description = "Cron schedule of the daemon mode (unused by the timer)."; };
    clockSkewSeconds = nullOrInt 0 86400 "Tolerated clock skew (agent default 60).";
    requestTimeoutMs = nullOrInt 100 600000 "Timeout of each request to the control plane (agent default 10000).";
    retries = nullOrInt 0 10 "Retries of a failed request (agent default 3).";
    probeIntervalMs = nullOrInt 10 600000 "Pause between probe rounds in the confirm window (agent default 2000).";
    splayMs = nullOrInt 0 3600000 "Random delay before a daemon-mode cycle (agent default 0).";
    interval = mkOption { type = types.str; default = "60s"; description = "How often the timer runs a cycle (systemd time span)."; };
    randomizedDelay = mkOption { type = types.str; default = "15s"; description = "Random delay per timer tick, so a fleet does not poll in lockstep."; };
  };

  config = mkIf cfg.enable {
    environment.etc.${configFile} = { text = builtins.toJSON agentConfig; mode = "0600"; };

    # Mirrors agent/systemd/nixfleet-agent.{service,timer}.
    systemd.services.nixfleet-agent = {
      description = "NixFleet agent: verify the signed release and converge this host";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ config.nix.package pkgs.coreutils ];
      restartIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${cfg.package}/bin/nixfleet agent --config /etc/${configFile} --once";
        User = "root";
        StateDirectory = "nixfleet-agent";
        StateDirectoryMode = "0700";
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
        Persistent = true;
        Unit = "nixfleet-agent.service";
      };
    };
  };
}
