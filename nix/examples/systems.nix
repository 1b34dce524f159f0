# Stand-ins for nixosConfigurations: each has config.nixpkgs.hostPlatform.system and
# config.system.build.toplevel, a tiny derivation laid out like a NixOS system
# (bin/switch-to-configuration, kernel, initrd), built with /bin/sh only.
let
  system = name: {
    config.nixpkgs.hostPlatform.system = "x86_64-linux";
    config.system.build.toplevel = derivation {
      name = "nixos-system-${name}";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" ''
        /bin/mkdir -p $out/bin
        printf '#!/bin/sh\necho "switch ${name} $1"\n' > $out/bin/switch-to-configuration
        /bin/chmod +x $out/bin/switch-to-configuration
        echo kernel > $out/kernel
        echo initrd > $out/initrd
      '' ];
    };
  };
in
{
  web-01 = system "web-01";
  web-02 = system "web-02";
  web-03 = system "web-03";
  db-01 = system "db-01";
}
