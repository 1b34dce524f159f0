# NixOS module: a NixFleet control plane. nginx serves the installed tree with mTLS, using the
# config `nixfleet nginx-config` renders (the same access rules the tests run against a real nginx),
# and proxies POST /acks to the ack endpoint (`nixfleet cp serve --acks-only`) on a unix socket. With
# `rootFile` set, a tree pushed by CI into `incomingDir` is verified and installed by `nixfleet cp
# sync` whenever its timestamp.json changes. The control plane holds no signing key.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption mkEnableOption mkIf types optionals escapeShellArgs;
  cfg = config.services.nixfleet-control-plane;
  nginxGroup = config.services.nginx.group;
  runDir = "/run/nixfleet-control-plane";
  nginxSnippet = "${runDir}/nginx.conf";
  nixfleet = "${cfg.package}/bin/nixfleet";

  nginxConfigArgs = [ "nginx-config" "--tree" cfg.treeDir "--pki" cfg.pkiDir "--listen" cfg.listen "--ack-upstream" "unix:${cfg.ackSocket}" "--out" nginxSnippet
      "--tls-session-cache" cfg.tlsSessionCache ]
    ++ optionals (cfg.dashboardDir != null) [ "--dashboard" cfg.dashboardDir ]
    ++ optionals (cfg.workers != null) [ "--workers" (toString cfg.workers) ];
  nginxPidFile = "/run/nginx/nginx.pid";
  ackArgs = [ "cp" "serve" "--acks-only" "--tree" cfg.treeDir "--socket" cfg.ackSocket ]
    ++ optionals (cfg.ackLogDir != null) [ "--acks-log" cfg.ackLogDir ]
    ++ optionals (cfg.rateLimit != null) [ "--rate-limit" cfg.rateLimit ];
  # "${path}" copies the file into the store (toString would name the source checkout, which a host
  # that gets its closure from a binary cache never has); a string names a file on the host.
  rootInStore = "${cfg.rootFile}";
  syncArgs = [ "cp" "sync" "--from" cfg.incomingDir "--tree" cfg.treeDir "--root" rootInStore "--nginx-pid" nginxPidFile "--json" ];

  sw = cfg.siteWatch;
  siteWatchArgs = [ "site" "watch" "--tree" cfg.treeDir "--root" rootInStore "--out" sw.outDir "--interval" (toString sw.intervalSeconds) "--json" ]
    ++ optionals (sw.notifyUrl != null) [ "--notify-url" sw.notifyUrl "--notify-state" "${sw.stateDir}/notified.json" ]
    ++ optionals (sw.notifyCommand != null) ([ "--notify-state" "${sw.stateDir}/notified.json" "--notify-command" ] ++ sw.notifyCommand);

  vs = cfg.viewServer;
  viewServerArgs = [ "views" "serve" "--tree" cfg.treeDir "--refresh" (toString vs.refreshSeconds) ];

  hardening = {
    User = cfg.user;
    Group = nginxGroup;
    # Group-readable tree and a group-writable socket: nginx (in that group) reads and connects.
    UMask = "0027";
    NoNewPrivileges = true;
    PrivateTmp = true;
    ProtectHome = true;
    ProtectSystem = "strict";
    ReadWritePaths = [ cfg.treeDir runDir ] ++ optionals (cfg.ackLogDir != null) [ cfg.ackLogDir ];
  };
in
{
  options.services.nixfleet-control-plane = {
    enable = mkEnableOption "the NixFleet control plane (nginx with mTLS serving the signed tree, and the ack endpoint)";
    package = mkOption {
      type = types.package;
      default = pkgs.nixfleet or (pkgs.callPackage ../package.nix { });
      defaultText = lib.literalExpression "pkgs.nixfleet (nixfleet's overlays.default), else nix/package.nix built with pkgs";
      description = "The nixfleet package (provides bin/nixfleet).";
    };
    treeDir = mkOption { type = types.str; default = "/var/lib/nixfleet-control-plane/tree"; description = "The installed tree (current -> versions/..., acks/, nginx/*.map)."; };
    pkiDir = mkOption { type = types.str; description = "PKI directory from `nixfleet pki init`: ca.crt, server.crt, server.key, crl.pem."; };
    listen = mkOption { type = types.str; default = "8443"; description = "nginx listen address: PORT or ADDR:PORT."; };
    ackSocket = mkOption { type = types.str; default = "${runDir}/ack.sock"; description = "Unix socket of the ack endpoint (nginx proxies POST /acks to it)."; };
    ackLogDir = mkOption { type = types.nullOr types.str; default = null; description = "Directory of the append-only ack log (default: inside the tree directory)."; };
    rateLimit = mkOption { type = types.nullOr (types.strMatching "off|[0-9]{1,6}/[0-9]{1,6}"); default = null; description = "Per-host ack rate limit BURST/PER_SECOND, or \"off\" (default 30/2)."; };
    dashboardDir = mkOption { type = types.nullOr types.str; default = null; description = "Operator dashboard directory served at /dashboard/ (operator certificates only)."; };
    tlsSessionCache = mkOption {
      type = types.strMatching "off|[1-9][0-9]{0,5}[km]";
      default = "128m";
      example = "off";
      description = ''
        How agents resume their TLS session between timer runs: the size of nginx's shared session cache
        (~1 KB per host: 128m holds ~128,000 hosts; a full cache costs the oldest hosts one full handshake),
        or "off" for stateless tickets. The cache makes a steady agent run ~1.6 KB on the wire instead of
        ~2.9 KB. Its sessions outlive an nginx reload, so the cache is named after the CA and CRL files and
        this module renders the config again and reloads nginx whenever pkiDir's ca.crt or crl.pem changes:
        the new, empty cache sends every host through a full handshake checked against the new CRL. The
        signed revocations (cp sync) refuse a certificate on every request either way.
      '';
    };
    workers = mkOption { type = types.nullOr types.ints.positive; default = null; description = "nginx worker processes (null: auto)."; };
    rootFile = mkOption { type = types.nullOr types.path; default = null; description = "The pinned trust root (a path such as ./root.json is copied into the store); set it to install CI trees from incomingDir with `nixfleet cp sync`."; };
    incomingDir = mkOption { type = types.str; default = "/var/lib/nixfleet-control-plane/incoming"; description = "Where CI pushes the published tree (timestamp.json last)."; };
    user = mkOption { type = types.str; default = "nixfleet-cp"; description = "User running the ack endpoint and cp sync."; };
    openFirewall = mkOption { type = types.bool; default = false; description = "Open the listen port in the firewall."; };
    siteWatch = {
      enable = mkEnableOption "the operator dashboard rebuilt by `nixfleet site watch` (needs rootFile), with optional notifications";
      outDir = mkOption { type = types.str; default = "/var/lib/nixfleet-site-watch/dashboard"; description = "Where the dashboard goes (a symlink to the newest build); point dashboardDir at it to serve it."; };
      stateDir = mkOption { type = types.str; default = "/var/lib/nixfleet-site-watch"; description = "Directory of outDir's builds and of notified.json (events already delivered)."; };
      intervalSeconds = mkOption { type = types.ints.between 0 86400; default = 60; description = "Periodic rebuild even without changes (0: only on changes)."; };
      notifyUrl = mkOption { type = types.nullOr (types.strMatching "https?://[^ ]+"); default = null; description = "Webhook: each event (halted, host failed, complete) POSTed as JSON with its signed acks."; };
      notifyCommand = mkOption { type = types.nullOr (types.listOf types.str); default = null; description = "Command (argv, no shell) run per event with the event JSON on stdin."; };
    };
    viewServer = {
      users = mkOption { type = types.listOf (types.strMatching "[a-z_][a-z0-9_-]*[$]?"); default = [ ]; description = "Operator accounts that run `nixfleet status` / `nixfleet trace` on this box: for each, a systemd user service (nixfleet-views, started by the account's user manager) runs `nixfleet views serve --tree treeDir`, so that their views of treeDir answer from a warm process (the same look, verified the same way). The accounts need read access to treeDir, as the views themselves do; each server uses the account's own cache directory."; };
      refreshSeconds = mkOption { type = types.ints.between 0 86400; default = 60; description = "After a change, replay the views served recently this often (seconds; 0: only on request). New acks are verified as they arrive regardless; a replay renews which files are unchanged and the ack log's tail, and costs what a look costs (10,000 hosts: ~0.2-0.5 s of CPU per view)."; };
    };
  };

  config = mkIf cfg.enable {
    users.users.${cfg.user} = { isSystemUser = true; group = nginxGroup; };

    systemd.tmpfiles.rules = [
      "d ${cfg.treeDir} 0750 ${cfg.user} ${nginxGroup} -"
      "d ${runDir} 0750 ${cfg.user} ${nginxGroup} -"
      "d ${cfg.incomingDir} 0750 ${cfg.user} ${nginxGroup} -"
    ] ++ optionals (cfg.ackLogDir != null) [ "d ${cfg.ackLogDir} 0700 ${cfg.user} ${nginxGroup} -" ]
      ++ optionals sw.enable [ "d ${sw.stateDir} 0750 ${cfg.user} ${nginxGroup} -" ];

    services.nginx.enable = true;
    # The server block, maps and ack upstream are rendered at boot (they name files that are not in the
    # Nix store: PKI, tree, revocation maps); nginx includes them into its http block.
    services.nginx.appendHttpConfig = "include ${nginxSnippet};";

    systemd.services.nixfleet-cp-nginx-config = {
      description = "NixFleet control plane: render the nginx configuration";
      wantedBy = [ "nginx.service" ];
      before = [ "nginx.service" ];
      after = [ "systemd-tmpfiles-setup.service" ];
      serviceConfig = hardening // {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${nixfleet} ${escapeShellArgs nginxConfigArgs}";
      };
    };
    # A CA or CRL change (pki revoke, a refreshed CRL) is applied by rendering again and reloading, never
    # by a bare reload: the session cache is named after those files, so the reload starts an empty one and
    # a certificate newly in the CRL cannot resume a session it made before (control-plane/nginx-config.ts).
    # With tickets the reload alone would do; rendering again costs nothing.
    systemd.paths.nixfleet-cp-nginx-crl = {
      wantedBy = [ "multi-user.target" ];
      pathConfig = {
        PathChanged = [ "${cfg.pkiDir}/ca.crt" "${cfg.pkiDir}/crl.pem" ];
        Unit = "nixfleet-cp-nginx-reload.service";
      };
    };
    systemd.services.nixfleet-cp-nginx-reload = {
      description = "NixFleet control plane: render the nginx configuration again and reload nginx (CA or CRL changed)";
      after = [ "nginx.service" ];
      serviceConfig = hardening // {
        Type = "oneshot";
        ExecStart = "${nixfleet} ${escapeShellArgs (nginxConfigArgs ++ [ "--nginx-pid" nginxPidFile ])}";
        # SIGHUP to nginx's master via its pid file, as cp sync does.
        AmbientCapabilities = [ "CAP_KILL" ];
        CapabilityBoundingSet = [ "CAP_KILL" ];
      };
    };
    systemd.services.nginx = { requires = [ "nixfleet-cp-nginx-config.service" ]; after = [ "nixfleet-cp-nginx-config.service" ]; };

    systemd.services.nixfleet-ack-endpoint = {
      description = "NixFleet ack endpoint (append-only, host-signed acks; no signing key)";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" "systemd-tmpfiles-setup.service" ];
      serviceConfig = hardening // {
        ExecStart = "${nixfleet} ${escapeShellArgs ackArgs}";
        UMask = "0007";
        Restart = "always";
        RestartSec = "1s";
      };
    };

    systemd.services.nixfleet-cp-sync = mkIf (cfg.rootFile != null) {
      description = "NixFleet control plane: verify and install the tree CI pushed";
      serviceConfig = hardening // {
        Type = "oneshot";
        ExecStart = "${nixfleet} ${escapeShellArgs syncArgs}";
        # Reloading nginx (SIGHUP via its pid file) for new revocation maps.
        AmbientCapabilities = [ "CAP_KILL" ];
        CapabilityBoundingSet = [ "CAP_KILL" ];
      };
    };
    systemd.paths.nixfleet-cp-sync = mkIf (cfg.rootFile != null) {
      wantedBy = [ "multi-user.target" ];
      pathConfig.PathChanged = "${cfg.incomingDir}/timestamp.json";
    };

    assertions = [
      { assertion = !sw.enable || cfg.rootFile != null; message = "services.nixfleet-control-plane.siteWatch needs rootFile (the dashboard verifies the tree against it)."; }
      { assertion = sw.notifyCommand == null || sw.notifyCommand != [ ]; message = "services.nixfleet-control-plane.siteWatch.notifyCommand: give the command's argv (or null)."; }
      { assertion = sw.notifyUrl == null || sw.notifyCommand == null; message = "services.nixfleet-control-plane.siteWatch: set notifyUrl or notifyCommand, not both."; }
    ];

    systemd.services.nixfleet-site-watch = mkIf sw.enable {
      description = "NixFleet operator dashboard: rebuild on change, notify on halt, failure and completion";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" "systemd-tmpfiles-setup.service" ];
      serviceConfig = hardening // {
        ExecStart = "${nixfleet} ${escapeShellArgs siteWatchArgs}";
        ReadWritePaths = [ sw.stateDir ];
        Restart = "always";
        RestartSec = "5s";
      };
    };

    # A user service: it runs as the operator, with the operator's cache directory (the one their
    # `nixfleet status` finds its socket in), for the accounts listed only (a triggering condition each).
    systemd.user.services.nixfleet-views = mkIf (vs.users != [ ]) {
      description = "NixFleet operator views kept warm for nixfleet status and trace (nixfleet views serve)";
      wantedBy = [ "default.target" ];
      unitConfig.ConditionUser = map (u: "|${u}") vs.users;
      serviceConfig = {
        ExecStart = "${nixfleet} ${escapeShellArgs viewServerArgs}";
        Restart = "on-failure";
        RestartSec = "5s";
      };
    };

    networking.firewall.allowedTCPPorts = optionals cfg.openFirewall [ (lib.toInt (lib.last (lib.splitString ":" cfg.listen))) ];
  };
}
