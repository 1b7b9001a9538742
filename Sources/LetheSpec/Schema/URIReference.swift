/// Just enough RFC 3986 reference resolution for `$id` and `$ref`.
enum URIReference {
    /// Splits `http://x/y.json#/a/b` into (`http://x/y.json`, `/a/b`).
    static func split(_ uri: String) -> (base: String, fragment: String?) {
        guard let hash = uri.firstIndex(of: "#") else { return (uri, nil) }
        let fragment = String(uri[uri.index(after: hash)...])
        return (String(uri[..<hash]), fragment.removingPercentEncoding())
    }

    static func hasScheme(_ s: String) -> Bool {
        guard let colon = s.firstIndex(of: ":"), colon != s.startIndex else { return false }
        let scheme = s[..<colon]
        return scheme.first!.isLetter
            && scheme.allSatisfy { $0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == "." }
    }

    /// `reference` resolved against the absolute `base`.
    static func resolve(_ reference: String, against base: String) -> String {
        if hasScheme(reference) { return normalize(reference) }
        let (baseNoFragment, _) = split(base)
        if reference.isEmpty { return baseNoFragment }
        if reference.hasPrefix("#") { return baseNoFragment + reference }
        // Authority and path of the base.
        guard let schemeEnd = baseNoFragment.firstRange(of: "://") else {
            if baseNoFragment.hasPrefix("/") {
                // A path-only base: resolve as a path.
                if reference.hasPrefix("/") { return reference }
                let directory = baseNoFragment.lastIndex(of: "/").map { String(baseNoFragment[...$0]) } ?? "/"
                return directory + reference
            }
            // Non-hierarchical base (urn:...): only fragments resolve against it.
            return reference
        }
        let afterScheme = baseNoFragment[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
        let origin = String(baseNoFragment[..<authorityEnd])
        var basePath = String(afterScheme[authorityEnd...])
        if let q = basePath.firstIndex(of: "?") { basePath = String(basePath[..<q]) }
        if reference.hasPrefix("//") {
            return normalize(String(baseNoFragment[..<schemeEnd.upperBound].dropLast(2)) + reference)
        }
        if reference.hasPrefix("/") { return normalize(origin + reference) }
        let directory = basePath.lastIndex(of: "/").map { String(basePath[...$0]) } ?? "/"
        return normalize(origin + directory + reference)
    }

    /// Removes `.` and `..` segments from the path.
    static func normalize(_ uri: String) -> String {
        guard let schemeEnd = uri.firstRange(of: "://") else { return uri }
        let (noFragment, fragment) = split(uri)
        let afterScheme = noFragment[schemeEnd.upperBound...]
        guard let pathStart = afterScheme.firstIndex(of: "/") else { return uri }
        let prefix = noFragment[..<pathStart]
        var out: [Substring] = []
        let segments = afterScheme[pathStart...].split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (n, seg) in segments.enumerated() {
            if seg == "." {
                if n == segments.count - 1 { out.append("") }
                continue
            }
            if seg == ".." {
                if !out.isEmpty { out.removeLast() }
                if n == segments.count - 1 { out.append("") }
                continue
            }
            out.append(seg)
        }
        let path = "/" + out.joined(separator: "/")
        return String(prefix) + path + (fragment.map { "#" + $0 } ?? "")
    }
}

extension String {
    func removingPercentEncoding() -> String {
        guard contains("%") else { return self }
        var bytes: [UInt8] = []
        var u = Array(utf8)[...]
        while let c = u.first {
            u = u.dropFirst()
            if c == UInt8(ascii: "%"), u.count >= 2,
                let v = UInt8(String(decoding: u.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(v)
                u = u.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
