# The cross-checks of publisher/validate.ts, on a fleet that passed schema.nix, with the same
# "path: message" texts. Returns the list of errors (empty = valid). Warnings (empty waves, unused
# policies, tags no host has) are left to the TypeScript validator, which prints them at publish time.
let
  inherit (builtins) attrNames attrValues filter length elemAt genList concatLists concatStringsSep sort groupBy hasAttr elem listToAttrs foldl' head tail;
  hostKey = import ./host-key.nix;
  graph = import ./graph.nix;
  waves = import ./waves.nix;

  err = path: message: "${path}: ${message}";
  indexed = list: genList (i: { inherit i; v = elemAt list i; }) (length list);
  unique = list: foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] list;

  # Each host sharing a value names the first other host (in name order) that has it. The TypeScript
  # validator names only the first host in JSON order, which Nix cannot see (fromJSON and attribute
  # sets sort names); reporting both directions keeps its line among ours whenever two hosts collide.
  duplicates = names: valueOf: path: what:
    let groups = groupBy (n: builtins.unsafeDiscardStringContext (valueOf n)) names; in
    concatLists (map (v:
      let g = groups.${v}; in
      if length g < 2 then [ ]
      else map (n: err (path n) "the same ${what} is used by hosts.${head (filter (o: o != n) g)}") g) (attrNames groups));

  checkHosts = fleet:
    let
      names = attrNames fleet.hosts;
      withKey = filter (n: (hostKey.parse fleet.hosts.${n}.hostKey).ok) names;
      withMachineId = filter (n: fleet.hosts.${n} ? machineId) names;
      revokedClosures = listToAttrs (map (c: { name = builtins.unsafeDiscardStringContext c.storePath; value = true; }) fleet.revoked.closures);
    in
    (if names == [ ] then [ (err "hosts" "the fleet has no hosts") ] else [ ])
    ++ concatLists (map (n:
      let h = fleet.hosts.${n}; in
      (if hasAttr h.channel fleet.channels then [ ] else [ (err "hosts.${n}.channel" ''unknown channel "${h.channel}"'') ])
      ++ (if hasAttr (builtins.unsafeDiscardStringContext h.target) revokedClosures then [ (err "hosts.${n}.target" "${h.target} is a revoked closure (revoked.closures)") ] else [ ])) names)
    ++ duplicates withKey (n: (hostKey.parse fleet.hosts.${n}.hostKey).raw) (n: "hosts.${n}.hostKey") "host key"
    ++ duplicates withMachineId (n: fleet.hosts.${n}.machineId) (n: "hosts.${n}.machineId") "machine id";

  checkChannelsAndPolicies = fleet:
    concatLists (map (n:
      let ch = fleet.channels.${n}; in
      (if hasAttr ch.policy fleet.policies then [ ] else [ (err "channels.${n}.policy" ''unknown policy "${ch.policy}"'') ])
      ++ (if ch.freshnessSeconds < 2 * ch.signingIntervalSeconds then
        [ (err "channels.${n}.freshnessSeconds" "${toString ch.freshnessSeconds} is less than 2 x signingIntervalSeconds (${toString ch.signingIntervalSeconds}): one late re-sign would make every host stale") ]
      else [ ])
      # Without windows the maintenance gate is always open: the policy would silently mean "allowed".
      ++ (if ch.reboot == "in-maintenance-window" && ch.maintenanceWindows == [ ] then
        [ (err "channels.${n}.reboot" ''in-maintenance-window needs at least one entry in maintenanceWindows (write "allowed" to reboot at any time)'') ]
      else [ ])) (attrNames fleet.channels))
    ++ concatLists (map (n:
      let
        p = fleet.policies.${n};
        ws = p.waves;
        count = length ws;
        path = "policies.${n}.waves";
        shape =
          if p.strategy == "all-at-once" then
            (if count > 1 then [ (err path "strategy all-at-once has exactly one wave, got ${toString count}") ] else [ ])
            ++ (if count > 0 && waves.membershipOf (head ws) != "remainder" then [ (err "${path}[0]" "strategy all-at-once takes every host: remove selector/count/percent") ] else [ ])
          else if count == 0 then [ (err path "strategy ${p.strategy} needs at least one wave") ]
          else [ ];
        canary =
          if p.strategy != "canary" then [ ]
          else if count < 2 then [ (err path "strategy canary needs a first small wave and at least one more") ]
          else if waves.membershipOf (head ws) == "remainder" then [ (err "${path}[0]" "the canary wave needs a selector, count or percent") ]
          else [ ];
        perWave = concatLists (map ({ i, v }:
          let given = filter (k: hasAttr k v) [ "selector" "count" "percent" ]; in
          (if length given > 1 then [ (err "${path}[${toString i}]" "give at most one of selector, count, percent (got ${concatStringsSep ", " given})") ] else [ ])
          ++ (if waves.membershipOf v == "remainder" && i != count - 1 then [ (err "${path}[${toString i}]" "a wave without selector, count or percent takes the remainder and must be the last wave") ] else [ ]))
          (indexed ws));
      in
      shape ++ canary ++ perWave) (attrNames fleet.policies));

  selectorRefs = sel:
    if sel ? tags || sel ? tagsAny || sel ? all then { hosts = [ ]; channels = [ ]; }
    else if sel ? hosts then { hosts = sel.hosts; channels = [ ]; }
    else if sel ? channel then { hosts = [ ]; channels = [ sel.channel ]; }
    else
      let parts = map selectorRefs (if sel ? and then sel.and else [ sel.not ]); in
      { hosts = concatLists (map (p: p.hosts) parts); channels = concatLists (map (p: p.channels) parts); };

  checkSelector = fleet: path: sel:
    let refs = selectorRefs sel; in
    map (h: err path ''unknown host "${h}"'') (filter (h: !(hasAttr h fleet.hosts)) (unique refs.hosts))
    ++ map (c: err path ''unknown channel "${c}"'') (filter (c: !(hasAttr c fleet.channels)) (unique refs.channels));

  checkSelectors = fleet:
    concatLists (map (n:
      concatLists (map ({ i, v }: if v ? selector then checkSelector fleet "policies.${n}.waves[${toString i}].selector" v.selector else [ ])
        (indexed fleet.policies.${n}.waves))) (attrNames fleet.policies))
    ++ concatLists (map ({ i, v }: checkSelector fleet "disruptionBudgets[${toString i}].selector" v.selector) (indexed fleet.disruptionBudgets));

  checkEdges = fleet:
    concatLists (map ({ i, v }:
      let
        path = "hostEdges[${toString i}]";
        a = fleet.hosts.${v.before} or null;
        b = fleet.hosts.${v.after} or null;
      in
      (if a == null then [ (err "${path}.before" ''unknown host "${v.before}"'') ] else [ ])
      ++ (if b == null then [ (err "${path}.after" ''unknown host "${v.after}"'') ] else [ ])
      ++ (if a != null && b != null && a.channel != b.channel then
        [ (err path "host edges stay within a channel: ${v.before} is in channel ${a.channel}, ${v.after} in ${b.channel} (use a channel edge)") ]
      else [ ])) (indexed fleet.hostEdges))
    ++ map (cycle: err "hostEdges" "cycle ${graph.describeCycle cycle}") (graph.findCycles fleet.hostEdges)
    ++ concatLists (map ({ i, v }:
      (if hasAttr v.before fleet.channels then [ ] else [ (err "channelEdges[${toString i}].before" ''unknown channel "${v.before}"'') ])
      ++ (if hasAttr v.after fleet.channels then [ ] else [ (err "channelEdges[${toString i}].after" ''unknown channel "${v.after}"'') ]))
      (indexed fleet.channelEdges))
    ++ map (cycle: err "channelEdges" "cycle ${graph.describeCycle cycle}") (graph.findCycles fleet.channelEdges);

  checkBudgets = fleet:
    let
      ids = map (b: b.id) fleet.disruptionBudgets;
      firstIndex = id: foldl' (found: i: if found == null && elemAt ids i == id then i else found) null (genList (i: i) (length ids));
    in
    concatLists (map ({ i, v }:
      let path = "disruptionBudgets[${toString i}]"; in
      (if firstIndex v.id != i then [ (err "${path}.id" ''duplicate budget id "${v.id}"'') ] else [ ])
      ++ (if (v ? maxInFlight) == (v ? maxInFlightPct) then [ (err path "give exactly one of maxInFlight, maxInFlightPct") ] else [ ])
      ++ (if (v.maxInFlight or null) == 0 then [ (err "${path}.maxInFlight" "can never be satisfied: 0 lets no host start") ] else [ ])
      ++ (if (v.maxInFlightPct or null) == 0 then [ (err "${path}.maxInFlightPct" "can never be satisfied: 0% lets no host start (use 1-100)") ] else [ ]))
      (indexed fleet.disruptionBudgets));

  # Needs the resolved waves: hosts no wave claims, and host edges that could only deadlock.
  checkResolution = fleet: resolved:
    let
      channelErrors = concatLists (map (n:
        let
          ch = resolved.channels.${n};
          size = foldl' (acc: w: acc + length w.hosts) 0 ch.waves + length ch.unassigned;
          shown = sort (a: b: a < b) ch.unassigned;
          count = length shown;
          list = concatStringsSep ", " (genList (elemAt shown) (if count > 10 then 10 else count))
            + (if count > 10 then ", ... (${toString count} in all)" else "");
        in
        if size == 0 || count == 0 then [ ]
        else [ (err "channels.${n}" ''hosts matched by no wave of policy "${ch.policy}": ${list} (rule: add a last wave without selector/count/percent to take the remainder)'') ])
        (attrNames resolved.channels));
      waveOf = listToAttrs (concatLists (map (ch: concatLists (map (w: map (h: { name = h; value = w.index; }) w.hosts) ch.waves)) (attrValues resolved.channels)));
      edgeErrors = concatLists (map ({ i, v }:
        let wb = waveOf.${v.before} or null; wa = waveOf.${v.after} or null; in
        if wb != null && wa != null && wb > wa then
          [ (err "hostEdges[${toString i}]" "can never be satisfied: ${v.after} (wave ${toString wa}) waits for ${v.before}, which is in the later wave ${toString wb}") ]
        else [ ]) (indexed fleet.hostEdges));
    in
    channelErrors ++ edgeErrors;
in
{
  crossCheck = fleet:
    checkHosts fleet ++ checkChannelsAndPolicies fleet ++ checkSelectors fleet ++ checkEdges fleet ++ checkBudgets fleet
    ++ checkResolution fleet (waves.resolveFleet fleet);
}
