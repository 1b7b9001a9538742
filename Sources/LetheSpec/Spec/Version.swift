/// Lethe's version. It is part of every config hash: a new version of the tool is a new input.
public enum LetheVersion {
    public static let current = "0.1.0"
}
