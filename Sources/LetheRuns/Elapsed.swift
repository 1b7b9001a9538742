/// Durations as progress lines show them: `42s`, `2m10s`, `1h05m`.
public enum Elapsed {
    public static func text(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\((s % 3600) / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
