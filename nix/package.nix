# nixfleet as a Nix package. The npm lockfile is the only dependency pin: importNpmLock fetches each
# locked tarball checked against its `integrity`, so there is no hand-maintained npmDepsHash to update.
# The build hook runs `npm run build` (scripts/build.mjs: esbuild compiles the command into dist/, which
# bin/nixfleet.js runs); the install hook copies package.json's `files`, drops devDependencies (tsx,
# esbuild, typescript: build-time only) and wraps package.json's bin (bin/nixfleet).
{ lib, buildNpmPackage, importNpmLock }:
let
  packageJson = builtins.fromJSON (builtins.readFile ../package.json);
  packageLock = import ./npm-lock.nix (builtins.fromJSON (builtins.readFile ../package-lock.json));
  # The checkout without what npm or a local run leaves behind (a flake sees only git-tracked files).
  src = builtins.path {
    path = ../.;
    name = "nixfleet-source";
    filter = path: _type: !(builtins.elem (baseNameOf path) [ "node_modules" "dist" ".git" "demo-output" ".bench" "result" ]);
  };
in
buildNpmPackage {
  pname = packageJson.name;
  inherit (packageJson) version;
  inherit src;
  npmDeps = importNpmLock { npmRoot = src; package = packageJson; inherit packageLock; };
  npmConfigHook = importNpmLock.npmConfigHook;
  npmBuildScript = "build";
  meta = {
    inherit (packageJson) description;
    license = lib.licenses.mit;
    mainProgram = "nixfleet";
    platforms = lib.platforms.linux;
  };
}
