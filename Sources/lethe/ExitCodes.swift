import ArgumentParser
import Foundation
import LetheRuns

/// One exit-code convention for every command (the README's "Exit codes"):
///
/// - 0: success; the answer is yes (valid, identical, reproduced, verified).
/// - 1: the command worked and the answer is no: a spec is invalid, two runs differ, a run does not
///   reproduce, a run does not verify against its manifest.
/// - 2: the command could not do what was asked: wrong usage (unknown option, bad value), a run that
///   cannot be found or whose hash prefix is ambiguous, an unreadable file, a run that failed.
enum Exit {
    static let no = ExitCode(1)
    static let error = ExitCode(2)
}

/// Prints `error: message` on standard error and returns the exit code to throw.
func failure(_ message: String, _ code: ExitCode = Exit.error) -> ExitCode {
    printError("error: \(message)")
    return code
}

/// The exit code of a failed stage: a reused stage that does not verify is a "no" (1), anything
/// else a failure to run (2).
func stageExitCode(for runError: Error) -> ExitCode {
    (runError as? RunError)?.kind == .verification ? Exit.no : Exit.error
}

/// Bounds shared by the commands' numeric options (ArgumentParser's `validate()`).
enum OptionChecks {
    static let maxThreads = 512

    static func threads(_ n: Int?, name: String = "--threads") throws {
        guard let n else { return }
        guard (1...maxThreads).contains(n) else {
            throw ValidationError("\(name) must be between 1 and \(maxThreads); found \(n)")
        }
    }

    static func positive(_ x: Double, name: String) throws {
        guard x.isFinite && x > 0 else { throw ValidationError("\(name) must be a positive finite number; found \(x)") }
    }

    static func nonNegative(_ x: Double, name: String) throws {
        guard x.isFinite && x >= 0 else { throw ValidationError("\(name) must be a finite number >= 0; found \(x)") }
    }

    static func atLeast(_ n: Int, _ minimum: Int, name: String) throws {
        guard n >= minimum else { throw ValidationError("\(name) must be at least \(minimum); found \(n)") }
    }
}
