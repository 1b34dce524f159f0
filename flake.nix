{
  description = "NixFleet: signed GitOps rollouts for fleets of NixOS hosts (Nix library and NixOS modules)";

  # No inputs: the library is plain Nix (builtins only), so the flake evaluates and checks offline.
  outputs = { self }:
    let
      nixfleetLib = import ./nix/lib;
      system = "x86_64-linux";
      exampleFleet = import ./nix/examples/fleet.nix { nixfleet = self; };
      # A check is a derivation whose evaluation forces what must hold.
      evalCheck = name: value: derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo ${builtins.hashString "sha256" (builtins.toJSON value)} > $out" ];
      };
      goldenDir = ./tests/fixtures/fleets/golden;
      golden = if builtins.pathExists goldenDir then builtins.attrNames (builtins.readDir goldenDir) else [ ];
    in
    {
      lib = {
        inherit (nixfleetLib) mkFleet mkHost fleetViolations resolveFleet;
        # The package from any nixpkgs: `nixfleet.lib.packageFor nixpkgs.legacyPackages.x86_64-linux`.
        packageFor = pkgs: pkgs.callPackage ./nix/package.nix { };
      };

      # `pkgs.nixfleet`; the NixOS modules' `package` defaults to it. There is no `packages` output:
      # the flake has no nixpkgs input (it must evaluate offline, and the fleet's own nixpkgs should
      # build it), so a consumer writes `packages.<system>.nixfleet = nixfleet.lib.packageFor pkgs`.
      overlays.default = final: _prev: { nixfleet = final.callPackage ./nix/package.nix { }; };

      nixosModules = {
        agent = import ./nix/modules/agent.nix;
        control-plane = import ./nix/modules/control-plane.nix;
        default = self.nixosModules.agent;
      };

      # `nix eval --json .#examples.fleet` is the fleet JSON `nixfleet publish --flake` reads.
      examples.fleet = exampleFleet;

      templates.default = {
        path = ./nix/examples;
        description = "A fleet defined with mkFleet and mkHost";
      };

      checks.${system} = {
        example-fleet = evalCheck "nixfleet-example-fleet" exampleFleet;
        # Every golden fleet fixture is accepted (the negative ones run in tests/nix, which need messages).
        golden-fleets = evalCheck "nixfleet-golden-fleets"
          (map (n: nixfleetLib.mkFleet (builtins.fromJSON (builtins.readFile (goldenDir + "/${n}/fleet.json")))) golden);
      };
    };
}
