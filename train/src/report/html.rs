//! The report's Markdown rendered as a small self-contained HTML page (headings, tables,
//! lists, paragraphs, inline code and images): enough for `report.md`, no dependency.

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn inline(s: &str) -> String {
    // **bold**, `code`, ![alt](src)
    let mut t = esc(s);
    if let (Some(a), Some(b)) = (t.find("!["), t.find("](")) {
        if let Some(c) = t[b..].find(')') {
            let alt = t[a + 2..b].to_string();
            let src = t[b + 2..b + c].to_string();
            t = format!(
                "{}<img alt=\"{alt}\" src=\"{src}\" style=\"max-width:100%\">{}",
                &t[..a],
                &t[b + c + 1..]
            );
        }
    }
    let mut out = String::new();
    let mut bold = false;
    let mut code = false;
    let mut it = t.chars().peekable();
    while let Some(ch) = it.next() {
        if ch == '*' && it.peek() == Some(&'*') {
            it.next();
            out.push_str(if bold { "</b>" } else { "<b>" });
            bold = !bold;
        } else if ch == '`' {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        } else {
            out.push(ch);
        }
    }
    out
}

/// A small Markdown → HTML conversion (headings, tables, lists, paragraphs, images).
pub fn markdown_to_html(md: &str) -> String {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>CloudFormer report</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>\n",
    );
    let mut in_table = false;
    let mut in_list = false;
    for line in md.lines() {
        let l = line.trim();
        if in_table && !l.starts_with('|') {
            h.push_str("</table>\n");
            in_table = false;
        }
        if in_list && !l.starts_with("- ") {
            h.push_str("</ul>\n");
            in_list = false;
        }
        if let Some(rest) = l.strip_prefix('|') {
            let cells: Vec<&str> = rest
                .trim_end_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                h.push_str("<table>\n");
                in_table = true;
            }
            h.push_str("<tr>");
            for c in cells {
                h.push_str(&format!("<{tag}>{}</{tag}>", inline(c)));
            }
            h.push_str("</tr>\n");
        } else if let Some(rest) = l.strip_prefix("- ") {
            if !in_list {
                h.push_str("<ul>\n");
                in_list = true;
            }
            h.push_str(&format!("<li>{}</li>\n", inline(rest)));
        } else if l.starts_with('#') {
            let n = l.chars().take_while(|c| *c == '#').count().min(6);
            h.push_str(&format!("<h{n}>{}</h{n}>\n", inline(l[n..].trim())));
        } else if !l.is_empty() {
            h.push_str(&format!("<p>{}</p>\n", inline(l)));
        }
    }
    if in_table {
        h.push_str("</table>\n");
    }
    if in_list {
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::markdown_to_html;

    #[test]
    fn headings_tables_lists_and_escaping() {
        let md = "# MAE <by> app\n\n| model | MAE |\n|---|---:|\n| rf-rich | **5.69** |\n\n- `k` = 0\n- ![curve](curves.png)\n\nplain & text\n";
        let h = markdown_to_html(md);
        assert!(h.contains("<h1>MAE &lt;by&gt; app</h1>"), "{h}");
        assert!(
            h.contains("<table>\n<tr><th>model</th><th>MAE</th></tr>\n<tr><td>rf-rich</td><td><b>5.69</b></td></tr>\n</table>"),
            "{h}"
        );
        assert!(h.contains("<li><code>k</code> = 0</li>"), "{h}");
        assert!(h.contains("<img alt=\"curve\" src=\"curves.png\""), "{h}");
        assert!(h.contains("</ul>\n<p>plain &amp; text</p>"), "{h}");
        assert!(h.ends_with("</body></html>\n"));
    }
}
