# Calendar validity of "YYYY-MM-DDTHH:MM:SSZ" (the format is checked by a regex first), matching the
# TypeScript IsoTime refinement: JavaScript's Date must read it back unchanged, so February 30th or
# 24:00:00 are refused.
let
  inherit (builtins) substring fromJSON div;
  # fromJSON of "08" fails (leading zero): strip zeros first.
  number = s: let t = builtins.match "0*([0-9]+)" s; in if t == null then -1 else fromJSON (builtins.head t);
  isLeap = y: (y - 4 * div y 4 == 0 && y - 100 * div y 100 != 0) || y - 400 * div y 400 == 0;
  daysIn = y: m: if m == 2 then (if isLeap y then 29 else 28) else if builtins.elem m [ 4 6 9 11 ] then 30 else 31;
in
{
  isCalendarTime = s:
    let
      y = number (substring 0 4 s); mo = number (substring 5 2 s); d = number (substring 8 2 s);
      h = number (substring 11 2 s); mi = number (substring 14 2 s); se = number (substring 17 2 s);
    in
    mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn y mo && h <= 23 && mi <= 59 && se <= 59;
}
