# Deterministic wave and budget resolution, the same rule as publisher/waves.ts: a channel's hosts in
# the stable order of sha256("<channel>/<host>") (hex, ties by name); each wave claims, from the hosts
# not yet claimed, those its selector matches, the next `count`, the next ceil(percent x channel
# size / 100) (at least 1), or, with none of the three, all the rest. Hosts no wave claims are
# "unassigned" (an error, reported by validate.nix). Expects a fleet that passed schema.nix.
let
  inherit (builtins) all any elem filter length sort genList elemAt hashString listToAttrs attrNames foldl' hasAttr;

  matches = sel: name: host:
    if sel ? tags then all (t: elem t host.tags) sel.tags
    else if sel ? tagsAny then any (t: elem t host.tags) sel.tagsAny
    else if sel ? hosts then elem name sel.hosts
    else if sel ? channel then host.channel == sel.channel
    else if sel ? all then true
    else if sel ? and then all (s: matches s name host) sel.and
    else !(matches sel.not name host);

  membershipOf = w:
    if w ? selector then "selector" else if w ? count then "count" else if w ? percent then "percent" else "remainder";

  percentOf = pct: total: let n = (pct * total + 99) / 100; in if n < 1 then 1 else n;

  take = n: list: genList (elemAt list) (if n < length list then n else length list);

  stableHostOrder = channel: hosts:
    map (x: x.host) (sort (a: b: a.key < b.key || (a.key == b.key && a.host < b.host))
      (map (host: { inherit host; key = hashString "sha256" "${channel}/${host}"; }) hosts));

  defaultSingleWave = { soakSeconds = 0; failureThreshold = { count = 0; }; offlineExcuseLimit = 0; };
  policyWaves = policy: if policy.strategy == "all-at-once" && policy.waves == [ ] then [ defaultSingleWave ] else policy.waves;

  resolveChannel = fleet: channel: hosts: policy:
    let
      ordered = stableHostOrder channel hosts;
      total = length ordered;
      step = acc: w:
        let
          membership = membershipOf w;
          taken =
            if membership == "selector" then filter (h: matches w.selector h fleet.hosts.${h}) acc.remaining
            else if membership == "count" then take w.count acc.remaining
            else if membership == "percent" then (if total == 0 then [ ] else take (percentOf w.percent total) acc.remaining)
            else acc.remaining;
          claimed = listToAttrs (map (h: { name = h; value = true; }) taken);
        in
        {
          remaining = if taken == [ ] then acc.remaining else filter (h: !(hasAttr h claimed)) acc.remaining;
          waves = acc.waves ++ [{
            index = length acc.waves;
            inherit membership;
            inherit (w) soakSeconds failureThreshold offlineExcuseLimit;
            hosts = taken;
          }];
        };
      result = foldl' step { remaining = ordered; waves = [ ]; } (policyWaves policy);
    in
    { inherit (result) waves; unassigned = result.remaining; };

  hostsOfChannel = fleet: channel: filter (h: fleet.hosts.${h}.channel == channel) (attrNames fleet.hosts);

  resolveBudget = fleet: b:
    let
      hosts = filter (h: matches b.selector h fleet.hosts.${h}) (attrNames fleet.hosts);
    in
    {
      inherit (b) id selector;
      maxInFlight = b.maxInFlight or (percentOf (b.maxInFlightPct or 0) (length hosts));
      maxInFlightPct = b.maxInFlightPct or null;
      inherit hosts;
    };

  # Channels whose policy is missing or yields no wave are left out (validate.nix reports them).
  resolveFleet = fleet:
    let
      resolvable = filter (ch:
        let p = fleet.policies.${fleet.channels.${ch}.policy} or null; in p != null && policyWaves p != [ ])
        (attrNames fleet.channels);
    in
    {
      channels = listToAttrs (map (ch:
        let policy = fleet.policies.${fleet.channels.${ch}.policy}; in {
          name = ch;
          value = { policy = fleet.channels.${ch}.policy; inherit (policy) strategy; } // resolveChannel fleet ch (hostsOfChannel fleet ch) policy;
        }) resolvable);
      budgets = map (resolveBudget fleet) fleet.disruptionBudgets;
    };
in
{
  inherit matches membershipOf percentOf stableHostOrder policyWaves resolveFleet;
}
