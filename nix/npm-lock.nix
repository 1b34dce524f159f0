# package-lock.json with every registry entry's tarball URL. npm leaves `resolved` out when
# omit-lockfile-registry-resolved is set (it is on the machines this lockfile is made on), and
# importNpmLock fetches only entries that have one: without it the offline `npm ci` in the build
# sandbox fails. The URL is the registry's tarball layout, NAME/-/BASENAME-VERSION.tgz; the entry's
# `integrity` (already in the lockfile) is the hash the fetch is checked against.
let
  registry = "https://registry.npmjs.org";
  last = list: builtins.elemAt list (builtins.length list - 1);
  # "node_modules/a/node_modules/@s/b" -> "@s/b" (a nested copy); an npm alias records its real name.
  nameOf = path: entry: entry.name or (last (builtins.filter builtins.isString (builtins.split "node_modules/" path)));
  baseNameOf' = name: last (builtins.filter builtins.isString (builtins.split "/" name));
  tarballUrl = name: version: "${registry}/${name}/-/${baseNameOf' name}-${version}.tgz";
  needsUrl = path: entry: path != "" && !(entry ? resolved) && !(entry.link or false) && entry ? integrity && entry ? version;
in
lock: lock // {
  packages = builtins.mapAttrs
    (path: entry: if needsUrl path entry then entry // { resolved = tarballUrl (nameOf path entry) entry.version; } else entry)
    lock.packages;
}
