# An example fleet, as a fleet repository's flake would write it:
#
#   outputs = { self, nixpkgs, nixfleet }: {
#     nixosConfigurations.web-01 = nixpkgs.lib.nixosSystem { ... };
#     fleet = import ./fleet.nix { inherit nixfleet; nixosConfigurations = self.nixosConfigurations; };
#   };
#
# and CI publishes it with `nixfleet publish --flake .#fleet ...`. Here the "NixOS configurations"
# are tiny stand-in systems (no nixpkgs is needed to evaluate this file), so the targets are real
# store paths that `nix build` can produce.
{ nixfleet
, nixosConfigurations ? import ./systems.nix
}:
let
  inherit (nixfleet.lib) mkFleet mkHost;
in
mkFleet {
  fleet = "example";
  cacheUrl = "https://cp.example.org:8443/nix-cache";

  hosts = {
    web-01 = mkHost { channel = "stable"; tags = [ "web" "canary" ]; hostKey = "RbwIwFUreC5qBoWDW1V9Vq0ct6uBimAn21NofFPvL04="; nixosConfiguration = nixosConfigurations.web-01; };
    web-02 = mkHost { channel = "stable"; tags = [ "web" ]; hostKey = "Mm83Si8Bqicb9IllKdcKhmYtooS5bhtmFQnezVmwLb4="; nixosConfiguration = nixosConfigurations.web-02; };
    web-03 = mkHost { channel = "stable"; tags = [ "web" ]; hostKey = "0yh9PAH7mdc5NygOrnKhPUNd30x9v9j9peWUA52idmk="; nixosConfiguration = nixosConfigurations.web-03; };
    db-01 = mkHost {
      channel = "stable";
      tags = [ "db" ];
      # An OpenSSH host key line works as well as the raw base64 key.
      hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIErTOPipg47ULg4bioNCGBF0B4pfJbBDh3XsXYTNPi root@db-01";
      machineId = "0f4b2c7e9a1d4e6f8b3c5a7d9e1f2a4b";
      nixosConfiguration = nixosConfigurations.db-01;
    };
    # A target built elsewhere: system is then given explicitly (with nixosConfiguration it is derived).
    lab-01 = mkHost { system = "x86_64-linux"; channel = "edge"; tags = [ "lab" ]; hostKey = "XbtDDeodkvyMqqo252WNrr+JkiMeOvg9wV7og9i8U/M="; target = "/nix/store/5glnrn2g9x61l5zqvq4cji48b1pmwl8l-nixos-system-lab-01"; };
  };

  channels = {
    edge = { policy = "all-at-once"; freshnessSeconds = 3600; signingIntervalSeconds = 900; confirmDeadlineSeconds = 300; heartbeatSeconds = 60; offlineWindowSeconds = 900; };
    stable = {
      policy = "canary";
      freshnessSeconds = 7200;
      signingIntervalSeconds = 1800;
      confirmDeadlineSeconds = 300;
      heartbeatSeconds = 60;
      offlineWindowSeconds = 900;
      maintenanceWindows = [ { cron = "0 2 * * *"; durationMinutes = 120; } ];
    };
  };

  policies = {
    all-at-once = { strategy = "all-at-once"; waves = [ ]; };
    canary = {
      strategy = "canary";
      onFailure = "rollback-and-halt";
      waves = [
        { selector = { tags = [ "canary" ]; }; soakSeconds = 600; }
        { selector = { not = { tags = [ "db" ]; }; }; soakSeconds = 1800; failureThreshold = { percent = 10; }; }
        { soakSeconds = 3600; }
      ];
      probes = [
        { kind = "systemd"; name = "no-failed-units"; unit = null; }
        { kind = "http"; name = "web"; url = "http://127.0.0.1/health"; expectStatus = 200; timeoutMs = 2000; }
      ];
      healthyPassesRequired = 2;
    };
  };

  # The edge (lab) channel proves a release before stable starts; the db waits for web-02.
  channelEdges = [ { before = "edge"; after = "stable"; } ];
  hostEdges = [ { before = "web-02"; after = "db-01"; } ];
  disruptionBudgets = [ { id = "web"; selector = { tags = [ "web" ]; }; maxInFlight = 1; } ];
}
